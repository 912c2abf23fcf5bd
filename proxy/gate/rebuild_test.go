package gate_test

import (
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// A push to a repository whose image the gate saw built a moment ago (the
// 2018 shape: a popular HEAD moved) must not let its launches pass straight
// through for the rest of the built window, each one a watcher of the new
// build: the first pass that finds BinderHub building ends the window.
func TestPushDuringTheBuiltWindowCollapsesAgain(t *testing.T) {
	sim := fastSim()
	sim.BuildTime = 300 * time.Millisecond
	s := startStack(t, sim, gate.StaticPolicies(testLaunch(), gate.Global{}), func(c *gate.Config) { c.BuiltTTL = time.Minute })
	const spec = "gh/org/repo/HEAD"
	if err := s.sim.SetRef(spec, commitA, 0); err != nil {
		t.Fatal(err)
	}
	if a := s.launch(t.Context(), spec, clientIP(1<<20), nil, nil); a.ready == nil {
		t.Fatalf("the launch of A: %v, phases %v", a.err, a.phases())
	}
	if err := s.sim.SetRef(spec, commitB, 3*time.Second); err != nil {
		t.Fatal(err)
	}

	// The first launch after the push passes (A was built a moment ago)
	// and finds B building.
	building := make(chan struct{})
	var once sync.Once
	first := make(chan result, 1)
	go func() {
		first <- s.launch(t.Context(), spec, clientIP(0), nil, func(p sse.Payload) {
			if p.Phase != sse.PhaseBuilt && p.Phase != "" {
				once.Do(func() { close(building) })
			}
		})
	}()
	select {
	case <-building:
	case <-time.After(10 * time.Second):
		t.Fatal("the first launch after the push never showed B's build")
	}

	const n = 30
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = s.launch(t.Context(), spec, clientIP(i+1), nil, nil) })
	}
	wg.Wait()
	out = append(out, <-first)
	for i, r := range out {
		if r.ready == nil || r.ready.BinderPersistentRequest != "v2/gh/org/repo/"+commitB {
			t.Errorf("launch %d: %v, phases %v, ready %+v; want ready with B", i, r.err, r.phases(), r.ready)
		}
	}
	// The pass that found the build, and the leader of the flight after it.
	if st := s.sim.Stats(); st.PeakBuildWatchers > 2 {
		t.Errorf("peak build watchers %d for %d launches after the push, want at most 2", st.PeakBuildWatchers, n+1)
	}
	if got := metricValue(t, s.reg, "binderguard_rebuilds_seen_total"); got != 1 {
		t.Errorf("binderguard_rebuilds_seen_total = %v, want 1", got)
	}
}
