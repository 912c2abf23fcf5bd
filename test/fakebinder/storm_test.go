package fakebinder

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// TestStormReproducesTheIncident storms one building repository the way
// mybinder.org was stormed on 2018-07-30 and checks that the simulated site
// degrades for everyone else: launches of other repositories, which need
// no build, slow down and time out while the watchers pile up, and work
// again once the storm is over. As in BinderHub, the storm's requests
// queued behind the pool build the image again, round after round, when
// they get their workers (build.py KubernetesBuildExecutor.submit dedups
// by pod name only): the storm lasts several builds, not one.
func TestStormReproducesTheIncident(t *testing.T) {
	const (
		clients    = 200
		background = 10
	)
	cfg := Config{
		BuildTime:         2 * time.Second,
		LaunchTime:        200 * time.Millisecond,
		LaunchTimeout:     time.Second, // at 200 watchers / 32 capacity a launch needs 1.25 s
		LaunchRetries:     1,
		BuiltSpecs:        "^gh/other/", // the background mix: popular images that exist
		ReadyHold:         10 * time.Millisecond,
		KeepaliveInterval: time.Hour,
	}
	ts := startServer(t, cfg)
	// 200 requests, 64 submits a round: 4 builds of 2 s.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// Before the storm another repository launches at full speed.
	if r := ts.launch(ctx, "/build/gh/other/before/HEAD", nil); r.last().Phase != sse.PhaseReady {
		t.Fatalf("launch before the storm: %v %v", r.phases(), r.Err)
	}
	if st := ts.Stats(); st.SlowedLaunches != 0 {
		t.Fatalf("a launch on an idle simulator was slowed: %+v", st)
	}

	storm := make([]launchResult, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { storm[i] = ts.launch(ctx, "/build/gh/jupyterlab/jupyterlab-demo/HEAD", nil) })
	}
	during := ts.waitFor(t, "the storm to attach", func(s Stats) bool { return s.ActiveBuildWatchers >= 150 })
	if during.BuildsSucceeded != 0 {
		t.Fatalf("the build ended before the storm attached; raise BuildTime: %+v", during)
	}

	others := make([]launchResult, background)
	var bg sync.WaitGroup
	for i := range background {
		bg.Go(func() { others[i] = ts.launch(ctx, fmt.Sprintf("/build/gh/other/r%d/HEAD", i), nil) })
	}
	bg.Wait()
	mid := ts.Stats()
	wg.Wait()

	// The other repositories' launches failed like BinderHub's: a 500
	// failed event from the launcher's timeout.
	failed := 0
	for i, r := range others {
		switch p := r.last(); {
		case p.Phase == sse.PhaseFailed && p.StatusCode == 500 && strings.Contains(p.Message, "took too long to launch"):
			failed++
		case p.Phase == sse.PhaseReady:
		default:
			t.Errorf("background launch %d: phases %v, last %+v, err %v", i, r.phases(), p, r.Err)
		}
	}
	if failed < background/2 {
		t.Errorf("%d of %d background launches failed during the storm; want most of them", failed, background)
	}
	if mid.ActiveBuildWatchers < clients/2 {
		t.Errorf("the storm was over before the background launches were; the test did not measure it: %+v", mid)
	}

	// The storm itself: every client a watcher, most queued, each queued
	// round building the image again. Its own launches run under the load
	// of the rounds still queued, so some time out as the others' do.
	tokens := map[string]bool{}
	stormFailed := 0
	for i, r := range storm {
		switch p := r.last(); {
		case p.Phase == sse.PhaseReady:
			tokens[p.Token] = true
		case p.Phase == sse.PhaseFailed && p.StatusCode == 500 && strings.Contains(p.Message, "took too long to launch"):
			stormFailed++
		default:
			t.Fatalf("storm client %d: phases %v, err %v", i, r.phases(), r.Err)
		}
	}
	st := ts.Stats()
	t.Logf("after the storm: %d of %d storm launches timed out; %+v", stormFailed, clients, st)
	if len(tokens) != clients-stormFailed {
		t.Errorf("%d distinct tokens for %d ready storm clients", len(tokens), clients-stormFailed)
	}
	pool := cfg.withDefaults().Pool
	rounds := int64((clients + pool - 1) / pool)
	if st.BuildsStarted < 2 || st.BuildsStarted > rounds || st.PeakBuildWatchers != clients {
		t.Errorf("builds_started %d, peak_build_watchers %d; want 2 to %d (a build per round of queued requests) and %d",
			st.BuildsStarted, st.PeakBuildWatchers, rounds, clients)
	}
	if st.PeakQueued < int64(clients-pool) {
		t.Errorf("peak_queued %d; want the watchers past the pool queued", st.PeakQueued)
	}
	if st.PeakLoadFactor < 6 {
		t.Errorf("peak_load_factor %v; want about 200/32", st.PeakLoadFactor)
	}
	if st.SlowedLaunches < background || st.LaunchFailures != int64(failed+stormFailed) {
		t.Errorf("slowed_launches %d, launch_failures %d; want every background attempt slowed and %d failures", st.SlowedLaunches, st.LaunchFailures, failed+stormFailed)
	}

	// Once the build is over the site recovers.
	if r := ts.launch(ctx, "/build/gh/other/after/HEAD", nil); r.last().Phase != sse.PhaseReady {
		t.Errorf("launch after the storm: %v %v", r.phases(), r.Err)
	}
}

// TestStormBuildsAsMeasured checks the simulator against what was measured
// against the real BinderHub (/work/shared/reference/binderhub-facts.md,
// "Measured against the real application"): 100–150 concurrent launches
// of one building repository with the 64-thread build pool, "64 of them
// attach as build watchers (the pool's limit); the rest wait silently for
// a pool thread, and when they get one the first build has finished and
// its pod is gone, so they start the same build again (2–4 builds of one
// image per storm)". 64 submits take the 64 workers, the log streams they
// queue on Running wait behind the 86 other submits, and those run 64 and
// then 22 at a time, each round after the last one's pod is deleted.
func TestStormBuildsAsMeasured(t *testing.T) {
	const clients = 150
	cfg := Config{
		BuildTime:         2 * time.Second,
		LaunchTime:        50 * time.Millisecond,
		ReadyHold:         10 * time.Millisecond,
		KeepaliveInterval: time.Hour,
	}
	ts := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	storm := make([]launchResult, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { storm[i] = ts.launch(ctx, "/build/gh/jupyterlab/jupyterlab-demo/HEAD", nil) })
	}
	wg.Wait()
	for i, r := range storm {
		if r.last().Phase != sse.PhaseReady {
			t.Fatalf("storm client %d: phases %v, err %v", i, r.phases(), r.Err)
		}
	}
	st := ts.Stats()
	t.Logf("builds %d, peak pod watches %d, peak log streams %d, peak queued %d", st.BuildsStarted, st.PeakPodWatches, st.PeakLogStreams, st.PeakQueued)
	if st.BuildsStarted < 2 || st.BuildsStarted > 4 {
		t.Errorf("builds_started %d; want 2 to 4, as measured against BinderHub", st.BuildsStarted)
	}
	if pool := int64(cfg.withDefaults().Pool); st.PeakPodWatches != pool {
		t.Errorf("peak_pod_watches %d; want %d attached at once, as measured", st.PeakPodWatches, pool)
	}
}
