package gate_test

import (
	"sync"
	"sync/atomic"
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

// A push while a flight's held launches are being let go (each on its own
// request, at the release pace) must not make every launch released after
// it its own watcher of the new build: the first released launch that
// finds BinderHub building turns the flight back to building, the oldest
// still held leads that build, and the rest stay held behind it.
func TestPushWhileReleasingCollapsesAgain(t *testing.T) {
	sim := fastSim()
	l := testLaunch()
	l.ReleaseRate, l.ReleaseBurst = 10, 1 // 100 launches take 10 s to let go
	s := startStack(t, sim, gate.StaticPolicies(l, gate.Global{}), nil)
	const spec = "gh/org/repo/HEAD"
	if err := s.sim.SetRef(spec, commitA, time.Second); err != nil {
		t.Fatal(err)
	}

	const n = 100
	out := make([]result, n)
	ready := make(chan struct{}, n)
	pushed := make(chan struct{})
	go func() {
		// Push B once a few launches are ready with A: the rest are still held.
		defer close(pushed)
		for range 5 {
			<-ready
		}
		if err := s.sim.SetRef(spec, commitB, 3*time.Second); err != nil {
			t.Error(err)
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out[i] = s.launch(t.Context(), spec, clientIP(i), nil, func(p sse.Payload) {
				if p.Phase == sse.PhaseReady {
					ready <- struct{}{}
				}
			})
		})
	}
	wg.Wait()
	<-pushed

	var onA, onB int
	for i, r := range out {
		switch {
		case r.ready == nil:
			t.Errorf("launch %d: %v, phases %v; want ready", i, r.err, r.phases())
		case r.ready.BinderPersistentRequest == "v2/gh/org/repo/"+commitA:
			onA++
		case r.ready.BinderPersistentRequest == "v2/gh/org/repo/"+commitB:
			onB++
		}
	}
	if onB == 0 {
		t.Fatalf("no launch got B (%d got A): the push came too late to test anything", onA)
	}
	// A's one watcher; for B the released launch that found the build,
	// the leader after it, and at most one more released meanwhile.
	st := s.sim.Stats()
	t.Logf("peak build watchers %d; %d launches ready with A, %d with B", st.PeakBuildWatchers, onA, onB)
	if st.PeakBuildWatchers > 3 {
		t.Errorf("peak build watchers %d (%d launches ready with A, %d with B): the launches released after the push each watched B's build", st.PeakBuildWatchers, onA, onB)
	}
}

// The last launches a release lets go are the likeliest to find a push;
// when no launch is left to hold, the spec must not be marked built again
// as the release ends, or the launches after it would pass, each a
// watcher of the new build.
func TestPushFoundByTheLastReleasedLaunchEndsTheBuiltMark(t *testing.T) {
	sim := fastSim()
	l := testLaunch()
	l.ReleaseRate, l.ReleaseBurst = 2, 1 // 4 followers: 2 s of release
	s := startStack(t, sim, gate.StaticPolicies(l, gate.Global{}), func(c *gate.Config) { c.BuiltTTL = time.Minute })
	const spec = "gh/org/repo/HEAD"
	if err := s.sim.SetRef(spec, commitA, time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 5
	ready := make(chan struct{}, n)
	building := make(chan struct{})
	var once sync.Once
	var pushed atomic.Bool
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s.launch(t.Context(), spec, clientIP(i), nil, func(p sse.Payload) {
				switch {
				case p.Phase == sse.PhaseReady:
					ready <- struct{}{}
				case pushed.Load() && (p.Phase == sse.PhaseBuilding || p.Phase == sse.PhaseFetching):
					once.Do(func() { close(building) })
				}
			})
		})
	}
	// Push B while the last follower is still held.
	for range n - 1 {
		<-ready
	}
	if err := s.sim.SetRef(spec, commitB, 4*time.Second); err != nil {
		t.Fatal(err)
	}
	pushed.Store(true)
	select {
	case <-building:
	case <-time.After(20 * time.Second):
		t.Fatal("the last released launch never showed B's build")
	}
	time.Sleep(time.Second) // the release ends: nobody is left to let go

	// B is still building; the spec must collapse, not pass as built.
	const m = 20
	out := make([]result, m)
	var after sync.WaitGroup
	for i := range m {
		after.Go(func() { out[i] = s.launch(t.Context(), spec, clientIP(100+i), nil, nil) })
	}
	after.Wait()
	wg.Wait()
	for i, r := range out {
		if r.ready == nil || r.ready.BinderPersistentRequest != "v2/gh/org/repo/"+commitB {
			t.Errorf("launch %d after the release: %v, phases %v; want ready with B", i, r.err, r.phases())
		}
	}
	// The last released launch and the leader of the launches after it.
	if st := s.sim.Stats(); st.PeakBuildWatchers > 2 {
		t.Errorf("peak build watchers %d: the launches after the release passed as built and each watched B's build", st.PeakBuildWatchers)
	}
}
