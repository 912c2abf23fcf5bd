package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// A site whose BinderHub registers an extra provider names it with
// --extra-providers: its launches pass through Envoy and the gate,
// collapse per spec as received, and RepoBan patterns ban them at the
// edge (the spelling the pattern writes) and in the gate (every other).
// A prefix nobody configured is still refused with "no provider found".
func TestExtraProvidersCollapseAndAreBannedByPattern(t *testing.T) {
	snap, errs := snapshot.New([]v1alpha1.RepoBan{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "miners"},
		Spec:       v1alpha1.RepoBanSpec{Patterns: []v1alpha1.SpecPattern{{Regex: "^evil/.*"}}, Message: "no mining"},
	}}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	parser, err := spec.NewParser("custom")
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, options{
		fb:       fakebinder.Config{BuildTime: 2 * time.Second, ExtraProviders: []string{"custom"}},
		policies: gate.SnapshotPolicies(snapshot.NewStore(snap), parser),
	})
	s.ctl.SetExtraProviders(parser.Extra())
	s.ctl.ApplySnapshot(snap, time.Now())
	s.waitRouteAcked()

	t.Run("launches of one spec share one build", func(t *testing.T) {
		const n = 20
		answers := make([]answer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { answers[i] = launch(s.ctx, s.edgeURL, "custom/Org/Repo/HEAD", 30*time.Second) })
		}
		wg.Wait()
		for i, a := range answers {
			if a.final().Phase != sse.PhaseReady {
				t.Fatalf("launch %d: %+v (err %v), want ready", i, a.events, a.err)
			}
		}
		if st := s.binder.Stats(); st.BuildsStarted != 1 || st.PeakBuildWatchers != 1 {
			t.Errorf("BinderHub saw %d builds and %d build watchers at once, want 1 and 1", st.BuildsStarted, st.PeakBuildWatchers)
		}
		if got := s.gateHits.prefix("/build/custom/Org/Repo/HEAD"); got != n {
			t.Errorf("the gate saw %d of %d launches", got, n)
		}
	})

	t.Run("a ban pattern applies at the edge and in the gate", func(t *testing.T) {
		for _, tc := range []struct{ spec, class string }{
			{"custom/evil/miner", "banned"},     // the edge's prefix
			{"custom/EVIL/miner", "banned"},     // another case: the gate's
			{"custom/%65vil/miner", "banned"},   // percent-encoded: the gate's
			{"custom/evil%2Fminer/x", "banned"}, // an encoded slash: the gate decodes it
		} {
			a := launch(s.ctx, s.edgeURL, tc.spec, 10*time.Second)
			f := a.final()
			if f.Phase != sse.PhaseFailed || f.StatusCode != 403 || f.Message != "no mining" {
				t.Errorf("%s: %+v (err %v), want a failed event with 403 and the ban's message", tc.spec, a.events, a.err)
			}
			if got := a.header.Get("X-Binderguard-Class"); got != tc.class {
				t.Errorf("%s: class %q, want %q", tc.spec, got, tc.class)
			}
		}
		if n := s.gateHits.prefix("/build/custom/evil/"); n != 0 {
			t.Errorf("the gate saw %d launches the edge bans", n)
		}
		for _, p := range []string{"/build/custom/evil", "/build/custom/EVIL", "/build/custom/%65vil"} {
			if n := s.binderHits.prefix(p); n != 0 {
				t.Errorf("a banned spec reached BinderHub %d times under %s", n, p)
			}
		}
	})

	t.Run("a prefix nobody configured is refused", func(t *testing.T) {
		a := launch(s.ctx, s.edgeURL, "other/Org/Repo/HEAD", 10*time.Second)
		f := a.final()
		if f.Phase != sse.PhaseFailed || f.StatusCode != 400 || !strings.Contains(f.Message, `no provider found for prefix "other"`) {
			t.Errorf("got %+v (err %v), want a 400 failed event saying no provider found", a.events, a.err)
		}
		if n := s.binderHits.prefix("/build/other/"); n != 0 {
			t.Errorf("an unknown provider reached BinderHub %d times", n)
		}
	})
}
