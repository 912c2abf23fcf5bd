package fakebinder

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// A request that waited in the build pool while the build it asked for ran
// gets its worker only after that build's pod is gone, and then starts the
// build again: BinderHub's dedup is by pod name only (build.py
// KubernetesBuildExecutor.submit: create_namespaced_pod, 409 → watch the
// pod that exists), and its watch frees the worker only when the pod is
// deleted (DELETED → BUILT → return). binderhub-facts.md, "Measured
// against the real application": the late watchers "start the same build
// again (2–4 builds of one image per storm)". The simulator must build
// again too, or a storm (or any leak of extra watchers past the gate)
// would cost one build here and several against BinderHub.
func TestWireQueuedSubmitStartsTheBuildAgain(t *testing.T) {
	cfg := fast()
	cfg.Pool = 2 // one watcher at a time
	cfg.BuildTime = 400 * time.Millisecond
	ts := startServer(t, cfg)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	var first, late launchResult
	wg.Go(func() { first = ts.launch(ctx, "/build/gh/org/a/HEAD", nil) })
	ts.waitFor(t, "the first watcher running the build", func(s Stats) bool { return s.PoolSlotsInUse == 2 && s.BuildsStarted == 1 })
	wg.Go(func() { late = ts.launch(ctx, "/build/gh/org/a/HEAD", nil) })
	ts.waitFor(t, "the second request queued", func(s Stats) bool { return s.Queued == 1 })
	wg.Wait()

	if first.last().Phase != sse.PhaseReady || late.last().Phase != sse.PhaseReady {
		t.Fatalf("phases: first %v, late %v; want both ready", first.phases(), late.phases())
	}
	if st := ts.Stats(); st.BuildsStarted != 2 {
		t.Errorf("builds started %d; want 2: the queued request's submit runs after the first pod was deleted and creates it again", st.BuildsStarted)
	}
	// It watches the second build: its log, not only waiting then built.
	if got := collapse(late.phases()); !slices.Contains(got, sse.PhaseFetching) {
		t.Errorf("queued request's phases %v; want the new build's log (fetching, building) before built", got)
	}
}

// A request that leaves while its build is still queued in the pool does
// not take its build with it: BuildHandler.on_finish only sets the build's
// stop_event (builder.py; build.py BuildExecutor.stop, "This is not
// related to stopping the build"), the pool.submit(build.submit) future is
// never cancelled, and KubernetesBuildExecutor.submit creates the pod
// before it looks at stop_event. So the build pod is created, and the
// image built, once a worker is free: the simulator must not forget it.
//
// The build an abandoned queued submit creates is watched all the same:
// tornado tells the handler nothing when its client leaves, so it waits on
// its queue until an emit fails, and the submit, with stop_event unset,
// watches the pod on its worker until the pod is deleted (build.py
// KubernetesBuildExecutor.submit; builder.py BuildHandler.emit raises
// Finish on StreamClosedError, and only then on_finish sets stop_event).
// The image it pushes is there for the next request, which finds it built.
func TestWireAbandonedQueuedSubmitBuildsUnwatched(t *testing.T) {
	cfg := fast()
	cfg.Pool = 2
	cfg.BuildTime = 400 * time.Millisecond
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { ts.launch(ctx, "/build/gh/org/a/HEAD", nil) })
	ts.waitFor(t, "pool full", func(s Stats) bool { return s.PoolSlotsInUse == 2 })

	qctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ts.launch(qctx, "/build/gh/org/b/HEAD", nil) }()
	ts.waitFor(t, "b queued", func(s Stats) bool { return s.Queued == 1 })
	cancel()
	<-done
	// b's request is gone, its submit is not.
	if st := ts.waitFor(t, "b's request gone", func(s Stats) bool { return s.ActiveBuildWatchers == 1 }); st.Queued != 1 || st.BuildsStarted != 1 {
		t.Errorf("stats %+v; want b's submit still queued behind a's build", st)
	}
	ts.waitFor(t, "b's pod building, watched by its abandoned submit", func(s Stats) bool {
		return s.BuildsStarted == 2 && s.BuildsInProgress == 1 && s.PodWatches == 1 && s.Queued == 0
	})
	ts.waitFor(t, "b built", func(s Stats) bool { return s.BuildsSucceeded == 2 && s.BuiltImages == 2 })

	r := ts.launch(ctx, "/build/gh/org/b/HEAD", nil)
	if got := collapse(r.phases()); !slices.Equal(got, []string{sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}) || r.Events[0].Message != "Found built image, launching...\n" {
		t.Errorf("the next launch of b: phases %v, first %+v; want it to find b's image built", got, r.Events[0])
	}
	if st := ts.Stats(); st.BuildsStarted != 2 {
		t.Errorf("builds started %d; want 2", st.BuildsStarted)
	}
}

// A request whose client leaves while it watches a long build keeps both
// its workers for a while: its handler learns of it at the next log line
// it emits (StreamClosedError → Finish → on_finish sets stop_event), its
// log stream returns at the line after that, and its submit at the end of
// its current pod watch (timeout_seconds=30, WatchTimeout here), since
// KubernetesBuildExecutor.submit reads stop_event only between watches.
func TestWireLeftWatcherFreesWorkersLikeBinderHub(t *testing.T) {
	cfg := fast()
	cfg.Pool = 2
	cfg.BuildTime = 4 * time.Second
	cfg.WatchTimeout = 600 * time.Millisecond
	ts := startServer(t, cfg)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan struct{})
	go func() { defer close(done); ts.launch(ctx, "/build/gh/org/a/HEAD", nil) }()
	ts.waitFor(t, "a's watch and log stream running", func(s Stats) bool { return s.PodWatches == 1 && s.LogStreams == 1 })
	left := time.Now()
	cancel()
	<-done
	ts.waitFor(t, "the handler gone", func(s Stats) bool { return s.ActiveBuildWatchers == 0 })
	if st := ts.Stats(); st.PodWatches != 1 || time.Since(left) > cfg.WatchTimeout/2 {
		t.Fatalf("stats %+v %v after the client left; want its submit still watching", st, time.Since(left))
	}
	st := ts.waitFor(t, "both workers free", func(s Stats) bool { return s.PoolSlotsInUse == 0 })
	if st.BuildsInProgress != 1 {
		t.Errorf("stats %+v; want the workers free while the build still runs", st)
	}
	if d := time.Since(left); d < cfg.WatchTimeout/2 {
		t.Errorf("workers free %v after the client left; want the submit to wait for its watch to time out", d)
	}
}

// Requests that arrive together all attach to the build, one worker each
// for their pod watches, and their log streams, queued when the pod went
// Running, wait behind them: with Pool 4, four watchers, no log lines,
// and waiting then built (builder.py: pool.submit(build.submit), then
// pool.submit(build.stream_logs) on RUNNING, one ThreadPoolExecutor).
func TestWireSubmitsFillThePoolBeforeLogStreams(t *testing.T) {
	cfg := fast()
	cfg.Pool = 4
	cfg.BuildTime = time.Second
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	res := make([]launchResult, 4)
	for i := range res {
		wg.Go(func() { res[i] = ts.launch(ctx, "/build/gh/org/a/HEAD", nil) })
	}
	ts.waitFor(t, "four submits and their log streams queued", func(s Stats) bool { return s.PodWatches == 4 && s.Queued == 4 })
	wg.Wait()
	want := []string{sse.PhaseWaiting, sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}
	for i, r := range res {
		if got := collapse(r.phases()); !slices.Equal(got, want) {
			t.Errorf("request %d: phases %v; want %v (no log: its log stream never had a worker)", i, got, want)
		}
	}
	if st := ts.Stats(); st.BuildsStarted != 1 || st.PeakPodWatches != 4 || st.PeakLogStreams != 0 {
		t.Errorf("stats %+v; want one build watched by 4 submits, no log stream run", st)
	}
}
