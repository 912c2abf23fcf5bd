package gate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// storm launches n clients of spec at once and returns what each saw.
func (s *stack) storm(ctx context.Context, spec string, n int) []result {
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = s.launch(ctx, spec, clientIP(i), nil, nil) })
	}
	wg.Wait()
	return out
}

// checkEveryoneLaunchedOnTheirOwn asserts the security invariant: every
// client reached ready with a token no other client got, on its own
// upstream request (the simulator echoes the X-Real-Ip of the request that
// launched in binder_client_ip), and saw one built and one ready event.
func checkEveryoneLaunchedOnTheirOwn(t *testing.T, results []result) {
	t.Helper()
	tokens := make(map[string]string)
	for _, r := range results {
		if r.err != nil || r.ready == nil {
			t.Errorf("client %s: no ready: err %v, phases %v, failed %+v", r.ip, r.err, r.phases(), r.failed)
			continue
		}
		if r.ready.BinderClientIP != r.ip {
			t.Errorf("client %s got the ready event of a request from %s", r.ip, r.ready.BinderClientIP)
		}
		if other, dup := tokens[r.ready.Token]; dup || r.ready.Token == "" {
			t.Errorf("client %s got token %q, also given to %q", r.ip, r.ready.Token, other)
		}
		tokens[r.ready.Token] = r.ip
		if r.count(sse.PhaseBuilt) != 1 || r.count(sse.PhaseReady) != 1 {
			t.Errorf("client %s saw phases %v, want exactly one built and one ready", r.ip, r.phases())
		}
		for _, e := range r.events {
			if e.Phase != sse.PhaseReady && (e.Token != "" || e.URL != "") {
				t.Errorf("client %s got a %s event carrying a token or url", r.ip, e.Phase)
			}
		}
	}
}

func TestStormOfOneBuildingSpecCollapsesToOneBuildWatcher(t *testing.T) {
	const n = 1000 / stormScale
	l := testLaunch()
	s := startStack(t, fastSim(), gate.StaticPolicies(l, gate.Global{}), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	results := s.storm(ctx, "gh/binder-examples/requirements/HEAD", n)

	checkEveryoneLaunchedOnTheirOwn(t, results)
	st := s.sim.Stats()
	if st.PeakBuildWatchers > 1 {
		t.Errorf("simulator peak_build_watchers = %d, want <= 1", st.PeakBuildWatchers)
	}
	if st.BuildsStarted != 1 {
		t.Errorf("builds_started = %d, want 1", st.BuildsStarted)
	}
	if st.TokensIssued != n {
		t.Errorf("tokens_issued = %d, want %d", st.TokensIssued, n)
	}
	var times []time.Duration
	for _, r := range results {
		times = append(times, r.elapsed)
	}
	// Acceptance bound of the issue, measured on this run.
	bound := fastSim().BuildTime + time.Duration(float64(n)/l.ReleaseRate*float64(time.Second)) + 2*time.Second
	p50, p99 := percentile(times, 0.5), percentile(times, 0.99)
	t.Logf("%d launches: p50 %v, p99 %v to ready (bound %v); peak watchers %d; releases %v",
		n, p50, p99, bound, st.PeakBuildWatchers, metricValue(t, s.reg, "binderguard_releases_total"))
	// Where the time went: built (the leader's, then each follower's own
	// after release) and built -> ready (the launch itself).
	var firstBuilt time.Time
	for _, r := range results {
		if b := r.when(sse.PhaseBuilt); !b.IsZero() && (firstBuilt.IsZero() || b.Before(firstBuilt)) {
			firstBuilt = b
		}
	}
	var released, launching []time.Duration
	for _, r := range results {
		if b, rd := r.when(sse.PhaseBuilt), r.when(sse.PhaseReady); !b.IsZero() && !rd.IsZero() {
			released = append(released, b.Sub(firstBuilt))
			launching = append(launching, rd.Sub(b))
		}
	}
	t.Logf("after the build: own built p50 %v p99 %v (release schedule ends at %v); built to ready p50 %v p99 %v",
		percentile(released, 0.5), percentile(released, 0.99), time.Duration(float64(n-l.ReleaseBurst)/l.ReleaseRate*float64(time.Second)),
		percentile(launching, 0.5), percentile(launching, 0.99))
	if p99 > bound {
		t.Errorf("p99 time to ready %v > build time + N/rate + 2 s = %v", p99, bound)
	}
	// Followers got the shared build log: every client but the leader saw
	// the gate's waiting event and log lines before built.
	followers := 0
	for _, r := range results {
		if len(r.events) > 0 && hasMessage(&r.events[0], "binderguard") {
			followers++
			if r.count(sse.PhaseBuilding) == 0 {
				t.Errorf("follower %s saw no build log: %v", r.ip, r.phases())
				break
			}
		}
	}
	if followers < n-1-int(metricValue(t, s.reg, "binderguard_launches_total", "outcome", "pass")) {
		t.Errorf("%d clients were held as followers, want all but the leader and pass-throughs", followers)
	}
	if w := metricValue(t, s.reg, "binderguard_waiters"); w != 0 {
		t.Errorf("binderguard_waiters = %v after the storm, want 0", w)
	}
	waitFor(t, "upstream streams to drain", func() bool { return gauge(s.reg, "binderguard_upstream_streams") == 0 })
}
