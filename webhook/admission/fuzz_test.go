package admission

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/webhook/evaluate"
)

// FuzzHandle feeds arbitrary pod objects to both handlers: every answer is
// a complete response, never a panic (controller-runtime would recover
// one, but a panic would still be a bug in the decision code).
func FuzzHandle(f *testing.F) {
	for _, p := range []any{build("https://github.com/bad/miner"), within(build("https://github.com/good/repo"))} {
		b, _ := json.Marshal(p)
		f.Add(b, "CREATE", "")
	}
	f.Add([]byte(`{"metadata":{"labels":{"component":"binderhub-build"}},"spec":{"containers":[{"args":["--ref"]}]}}`), "CREATE", "")
	f.Add([]byte(`{"metadata":{"labels":{"component":"singleuser-server"}},"spec":{"initContainers":[{"env":[{"name":"BINDER_REQUEST","value":"v2/"}]}]}}`), "UPDATE", "resize")
	f.Add([]byte(`{"spec":{"containers":[{"resources":{"limits":{"cpu":"1e100"}}}]}}`), "CREATE", "")
	h, err := New(Config{Policies: func(_ time.Time) (evaluate.Policies, bool) { return policies(evaluate.ModeEnforce), true }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte, op, sub string) {
		req := cradmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "f", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Operation(op),
			SubResource: sub, Object: runtime.RawExtension{Raw: raw},
		}}
		for _, hh := range []cradmission.Handler{h.Mutating, h.Validating} {
			r := hh.Handle(context.Background(), req)
			if r.Result == nil {
				t.Fatalf("response without a result: %+v", r)
			}
		}
	})
}
