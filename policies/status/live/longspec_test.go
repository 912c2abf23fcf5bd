package live_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/test/testenv"
)

// The gate holds launches of any spec up to gate.MaxSpecBytes (2048) and
// keys them by the spec's build key, but the CRD caps
// status.hotSpecs[].spec at 1024 characters. One held launch of a longer
// spec (a long ref or clone URL, which anyone can send) makes the API
// server refuse the whole status patch of the LaunchPolicy that governs
// it, every round, so the policy's waiters and hot specs freeze at their
// last value for as long as that spec stays hot.
func TestLiveCountersSurviveAHotSpecLongerThanTheCRDAllows(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	lp := &v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "site"}}
	if err := env.Client.Create(ctx, lp); err != nil {
		t.Fatal(err)
	}
	// A spec the gate accepts (under MaxSpecBytes) whose build key is over
	// the CRD's 1024.
	raw := "gh/org/repo/" + strings.Repeat("r", 1100)
	if len(raw) > gate.MaxSpecBytes {
		t.Fatalf("test spec is %d bytes, over the gate's %d", len(raw), gate.MaxSpecBytes)
	}
	sp, err := spec.Parse(raw)
	if err != nil {
		t.Fatalf("the spec parser refuses the launch: %v", err)
	}
	policy := live.PolicyName(ns, "site")
	loads := []live.Load{{
		Waiters: map[string]int{policy: 7},
		Hot: []live.Spec{
			{Key: sp.BuildKey(), Policy: policy, Waiters: 5, Stage: v1alpha1.BuildStageBuilding},
			{Key: "gh/org/other/HEAD", Policy: policy, Waiters: 2, Stage: v1alpha1.BuildStageBuilding},
		},
	}}
	w, err := live.NewWriter(env.Client, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lp), lp); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(ctx, []v1alpha1.LaunchPolicy{*lp}, loads); err != nil || n != 1 {
		t.Fatalf("Write: wrote %d, err %v; want the counters written (7 held launches)", n, err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lp), lp); err != nil {
		t.Fatal(err)
	}
	if lp.Status.Waiters != 7 {
		t.Errorf("status.waiters = %d, want 7", lp.Status.Waiters)
	}
	// The long spec is listed, cut to the CRD's length.
	var cut bool
	for _, h := range lp.Status.HotSpecs {
		if strings.HasPrefix(h.Spec, "gh/org/repo/rrr") && strings.HasSuffix(h.Spec, "…") && len([]rune(h.Spec)) == 1024 {
			cut = true
		}
	}
	if !cut {
		t.Errorf("status.hotSpecs %+v: want the long spec cut to 1024 characters ending in …", lp.Status.HotSpecs)
	}
}
