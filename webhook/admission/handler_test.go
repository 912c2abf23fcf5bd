package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/webhook/evaluate"
)

// fakePolicies bans exact repository URLs; normalisation is the policy
// package's job and is exercised against the real snapshot elsewhere.
type fakePolicies struct {
	bans  map[string]evaluate.Ban
	build evaluate.BuildPolicy
}

func (p fakePolicies) BanURL(u string) (evaluate.Ban, bool, error) {
	b, ok := p.bans[u]
	return b, ok, nil
}
func (p fakePolicies) BanRequest(string) (evaluate.Ban, bool, error) {
	return evaluate.Ban{}, false, nil
}
func (p fakePolicies) BuildFor(string) evaluate.BuildPolicy { return p.build }

var limits = corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("2G"), "ephemeral-storage": resource.MustParse("2G")}

func policies(mode evaluate.Mode) fakePolicies {
	d := int64(3600)
	return fakePolicies{
		bans: map[string]evaluate.Ban{"https://github.com/bad/miner": {
			Policy: "RepoBan/binder/crypto", Rule: "gh/bad/miner", Mode: mode, Repo: "github.com/bad/miner", Message: "mining",
		}},
		build: evaluate.BuildPolicy{Policy: "LaunchPolicy/binder/builds", Mode: evaluate.ModeEnforce,
			Resources: corev1.ResourceRequirements{Limits: limits}, ActiveDeadlineSeconds: &d},
	}
}

func build(repo string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "build-x", Namespace: "binder",
			Labels:      map[string]string{"component": "binderhub-build"},
			Annotations: map[string]string{"binder-repo": repo}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "r2d",
			Args: []string{"jupyter-repo2docker", "--ref=abc", repo}}}},
	}
}

func within(p *corev1.Pod) *corev1.Pod {
	d := int64(60)
	p.Spec.ActiveDeadlineSeconds = &d
	p.Spec.Containers[0].Resources.Limits = limits
	return p
}

type recorded struct {
	regarding, related runtime.Object
	reason, note       string
}

type fakeRecorder struct{ events []recorded }

func (r *fakeRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.events = append(r.events, recorded{regarding, related, reason, fmt.Sprintf(note, args...)})
}

func request(op admissionv1.Operation, sub string, pod *corev1.Pod) cradmission.Request {
	raw, _ := json.Marshal(pod)
	return cradmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, SubResource: sub,
		Namespace: pod.Namespace, Name: pod.Name, Operation: op, Object: runtime.RawExtension{Raw: raw},
	}}
}

func hooks(t *testing.T, p evaluate.Policies, rec *fakeRecorder, reg prometheus.Registerer) *Hooks {
	t.Helper()
	cfg := Config{Policies: func(time.Time) (evaluate.Policies, bool) { return p, p != nil }, Registerer: reg}
	if rec != nil {
		cfg.Recorder = rec
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestValidating(t *testing.T) {
	tests := map[string]struct {
		pols     evaluate.Policies
		req      cradmission.Request
		allowed  bool
		code     int32
		message  string
		warnings int
		events   int
	}{
		"a banned build pod is denied with a message naming policy, rule and repository": {
			pols: policies(evaluate.ModeEnforce), req: request("CREATE", "", within(build("https://github.com/bad/miner"))),
			allowed: false, code: 403, message: `build pod of repository github.com/bad/miner is banned by RepoBan/binder/crypto (rule "gh/bad/miner"): mining`,
		},
		"a banned build pod under Warn is allowed with a warning": {
			pols: policies(evaluate.ModeWarn), req: request("CREATE", "", within(build("https://github.com/bad/miner"))),
			allowed: true, code: 200, warnings: 1,
		},
		"a banned build pod under Audit is allowed and leaves an Event": {
			pols: policies(evaluate.ModeAudit), req: request("CREATE", "", within(build("https://github.com/bad/miner"))),
			allowed: true, code: 200, events: 1,
		},
		"an Audit finding in a dry run leaves no Event": {
			pols: policies(evaluate.ModeAudit),
			req: func() cradmission.Request {
				r := request("CREATE", "", within(build("https://github.com/bad/miner")))
				dry := true
				r.DryRun = &dry
				return r
			}(),
			allowed: true, code: 200,
		},
		"a build pod over the maximum is denied": {
			pols: policies(evaluate.ModeEnforce),
			req: func() cradmission.Request {
				p := within(build("https://github.com/good/repo"))
				p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("8"), "memory": resource.MustParse("1G"), "ephemeral-storage": resource.MustParse("1G")}
				return request("CREATE", "", p)
			}(),
			allowed: false, code: 403, message: "exceeds the maximum 1",
		},
		"a resize above the maximum is denied": {
			pols: policies(evaluate.ModeEnforce),
			req: func() cradmission.Request {
				p := within(build("https://github.com/good/repo"))
				p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"memory": resource.MustParse("64G")}
				return request("UPDATE", "resize", p)
			}(),
			allowed: false, code: 403, message: "limits[memory]",
		},
		"a plain update of a banned pod is not judged": {
			pols: policies(evaluate.ModeEnforce), req: request("UPDATE", "", within(build("https://github.com/bad/miner"))),
			allowed: true, code: 200,
		},
		"a request for another kind is a clear error": {
			pols: policies(evaluate.ModeEnforce),
			req: func() cradmission.Request {
				r := request("CREATE", "", build("x"))
				r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
				return r
			}(),
			allowed: false, code: 400, message: "binderguard admits only core/v1 Pods",
		},
		"a request without an object is a clear error": {
			pols: policies(evaluate.ModeEnforce),
			req: func() cradmission.Request {
				r := request("CREATE", "", build("x"))
				r.Object.Raw = nil
				return r
			}(),
			allowed: false, code: 400, message: "no object",
		},
		"an object that is not a pod is a clear error": {
			pols: policies(evaluate.ModeEnforce),
			req: func() cradmission.Request {
				r := request("CREATE", "", build("x"))
				r.Object.Raw = []byte(`{"spec": "not a pod spec"}`)
				return r
			}(),
			allowed: false, code: 400, message: "decoding the pod",
		},
		"before policies are loaded the validating webhook refuses": {
			pols: nil, req: request("CREATE", "", within(build("https://github.com/good/repo"))),
			allowed: false, code: 503, message: "not loaded its policies yet",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := &fakeRecorder{}
			reg := prometheus.NewPedanticRegistry()
			h := hooks(t, tc.pols, rec, reg)
			resp := h.Validating.Handle(context.Background(), tc.req)
			if resp.Allowed != tc.allowed || resp.Result == nil || resp.Result.Code != tc.code {
				t.Fatalf("allowed=%v result=%+v, want %v code %d", resp.Allowed, resp.Result, tc.allowed, tc.code)
			}
			if !strings.Contains(resp.Result.Message, tc.message) {
				t.Errorf("message %q does not contain %q", resp.Result.Message, tc.message)
			}
			if len(resp.Warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", resp.Warnings, tc.warnings)
			}
			for _, w := range resp.Warnings {
				if len(w) >= 120 {
					t.Errorf("warning %q is not under 120 characters", w)
				}
			}
			if len(rec.events) != tc.events {
				t.Fatalf("events = %+v, want %d", rec.events, tc.events)
			}
			if tc.events > 0 {
				e := rec.events[0]
				if ref, ok := e.related.(*corev1.ObjectReference); !ok || ref.Kind != "RepoBan" || ref.Name != "crypto" {
					t.Errorf("event related = %#v, want the RepoBan", e.related)
				}
				if !strings.Contains(e.note, "Audit mode: allowed") {
					t.Errorf("event note = %q", e.note)
				}
				if n := counter(t, h.Validating.(*validating).m.findings.WithLabelValues("Audit", "RepoBan/binder/crypto", "gh/bad/miner")); n != 1 {
					t.Errorf("audit findings metric = %v, want 1", n)
				}
			}
			if n := series(t, reg, "binderguard_webhook_reviews_total"); n != 1 {
				t.Errorf("review series = %d, want 1", n)
			}
		})
	}
}

func TestMutating(t *testing.T) {
	tests := map[string]struct {
		pols    evaluate.Policies
		req     cradmission.Request
		patches []string // paths
	}{
		"a build pod without limits is patched with limits and a deadline": {
			pols: policies(evaluate.ModeEnforce), req: request("CREATE", "", build("https://github.com/good/repo")),
			patches: []string{"/spec/activeDeadlineSeconds", "/spec/containers/0/resources/limits"},
		},
		"a build pod within limits is not patched": {
			pols: policies(evaluate.ModeEnforce), req: request("CREATE", "", within(build("https://github.com/good/repo"))),
		},
		"before policies are loaded the pod is allowed unchanged": {
			pols: nil, req: request("CREATE", "", build("https://github.com/good/repo")),
		},
		"an update is never patched": {
			pols: policies(evaluate.ModeEnforce), req: request("UPDATE", "", build("https://github.com/good/repo")),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := hooks(t, tc.pols, nil, nil)
			resp := h.Mutating.Handle(context.Background(), tc.req)
			if !resp.Allowed {
				t.Fatalf("mutating webhook denied: %+v", resp.Result)
			}
			var got []string
			for _, p := range resp.Patches {
				got = append(got, p.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.patches, ",") {
				t.Fatalf("patched %v, want %v", got, tc.patches)
			}
		})
	}
}

func TestPolicyRef(t *testing.T) {
	tests := map[string]struct {
		in   string
		kind string
	}{
		"a RepoBan reference":                      {"RepoBan/binder/crypto", "RepoBan"},
		"a LaunchPolicy reference":                 {"LaunchPolicy/binder/builds", "LaunchPolicy"},
		"the built-in default has none":            {"default", ""},
		"a file policy without namespace has none": {"RepoBan//x", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ref := PolicyRef(tc.in)
			if (ref == nil) != (tc.kind == "") || (ref != nil && ref.Kind != tc.kind) {
				t.Fatalf("PolicyRef(%q) = %+v, want kind %q", tc.in, ref, tc.kind)
			}
		})
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func series(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestValidatingReportsRefusals(t *testing.T) {
	tests := map[string]struct {
		mode    evaluate.Mode
		pod     *corev1.Pod
		dryRun  bool
		want    []string
		allowed bool
	}{
		"a pod denied by an Enforce ban is reported once for the ban": {
			mode: evaluate.ModeEnforce, pod: within(build("https://github.com/bad/miner")),
			want: []string{"RepoBan/binder/crypto"},
		},
		"a dry run is not reported": {
			mode: evaluate.ModeEnforce, pod: within(build("https://github.com/bad/miner")), dryRun: true,
		},
		"a Warn ban denies nothing and reports nothing": {
			mode: evaluate.ModeWarn, pod: within(build("https://github.com/bad/miner")), allowed: true,
		},
		"an allowed pod reports nothing": {
			mode: evaluate.ModeEnforce, pod: within(build("https://github.com/good/repo")), allowed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			h, err := New(Config{
				Policies:  func(time.Time) (evaluate.Policies, bool) { return policies(tc.mode), true },
				OnRefused: func(policy string) { got = append(got, policy) },
			})
			if err != nil {
				t.Fatal(err)
			}
			req := request(admissionv1.Create, "", tc.pod)
			req.DryRun = &tc.dryRun
			resp := h.Validating.Handle(context.Background(), req)
			if resp.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v (%s)", resp.Allowed, tc.allowed, resp.Result.Message)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("reported %v, want %v", got, tc.want)
			}
		})
	}
}
