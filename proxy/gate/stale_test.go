package gate_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	// staleNotice is the start of the gate's one event to a stale launch.
	staleNotice = "binderguard: A new version of this repository is being built"
)

func staleLaunch(on bool) gate.Launch {
	l := testLaunch()
	l.Stale, l.StaleMaxAge = on, time.Hour
	return l
}

// buildingStack is a gate in front of a simulator where gh/org/repo/HEAD
// was at commit A, was launched once (so the gate saw A ready), and was
// then pushed to B, whose build takes bBuild; a leader's launch of HEAD
// is showing B's build log when it returns.
type buildingStack struct {
	*stack
	spec   string
	origin http.Header
	leader chan result
}

func startBuilding(t *testing.T, pol gate.Policies, bBuild time.Duration) *buildingStack {
	return startBuildingVia(t, pol, bBuild, nil)
}

// startBuildingVia is startBuilding with the gate's upstream wrapped by
// via (nil: none), for faults injected between the gate and the simulator.
func startBuildingVia(t *testing.T, pol gate.Policies, bBuild time.Duration, via func(http.Handler) http.Handler, tweaks ...func(*gate.Config)) *buildingStack {
	t.Helper()
	sim := fastSim()
	sim.BuildTime = 300 * time.Millisecond // A's build
	sim.BuildTokenSecret = "s3cret"
	// A's launch marks HEAD built, and launches of a spec marked built
	// pass straight through for BuiltTTL: keep that shorter than the wait
	// before the push below.
	const builtTTL = 50 * time.Millisecond
	tweak := func(c *gate.Config) {
		c.BuiltTTL = builtTTL
		for _, tw := range tweaks {
			tw(c)
		}
		if via != nil {
			sim := c.Upstream
			p := httptest.NewServer(via(&httputil.ReverseProxy{
				Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(sim); r.Out.Host = r.In.Host },
				FlushInterval: -1,
			}))
			t.Cleanup(p.Close)
			c.Upstream, _ = url.Parse(p.URL)
		}
	}
	s := &buildingStack{stack: startStack(t, sim, pol, tweak), spec: "gh/org/repo/HEAD",
		origin: http.Header{"Origin": {"https://binder.test"}}, leader: make(chan result, 1)}
	ctx := t.Context()
	if err := s.sim.SetRef(s.spec, commitA, 0); err != nil {
		t.Fatal(err)
	}
	a := s.launch(ctx, s.withToken(t), clientIP(1<<20), s.origin, nil)
	if a.ready == nil || a.ready.BinderPersistentRequest != "v2/gh/org/repo/"+commitA {
		t.Fatalf("the launch of A: %v, phases %v, ready %+v", a.err, a.phases(), a.ready)
	}
	time.Sleep(2 * builtTTL)
	if err := s.sim.SetRef(s.spec, commitB, bBuild); err != nil {
		t.Fatal(err)
	}
	building := make(chan struct{})
	var once sync.Once
	go func() {
		s.leader <- s.launch(ctx, s.withToken(t), clientIP(1<<20+1), s.origin, func(p sse.Payload) {
			if p.Phase == sse.PhaseFetching || p.Phase == sse.PhaseBuilding {
				once.Do(func() { close(building) })
			}
		})
	}()
	select {
	case <-building:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader never showed B's build")
	}
	return s
}

// withToken is the launch path with a build_token for the spec, as
// BinderHub's page issues it.
func (s *buildingStack) withToken(t *testing.T) string {
	return s.spec + "?build_token=" + buildToken(t, "s3cret", s.spec, "binder.test", time.Now().Add(5*time.Minute))
}

func (s *buildingStack) storm(t *testing.T, n int) []result {
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		path := s.withToken(t)
		wg.Go(func() { out[i] = s.launch(t.Context(), path, clientIP(i), s.origin, nil) })
	}
	wg.Wait()
	return out
}

func persistent(r result) string {
	if r.ready == nil {
		return ""
	}
	return strings.TrimPrefix(r.ready.BinderPersistentRequest, "v2/gh/org/repo/")
}

// The scenario: commit A was launched, HEAD moved to B with a
// long build, and 200 launches of HEAD arrive. One builds B; the other
// 199 are each launched on their own request, with their own token, as A,
// while B builds; after B is built, launches get B.
func TestStaleWhileBuildingLaunchesTheLastGoodCommit(t *testing.T) {
	const bBuild = 8 * time.Second
	n := 199 / stormScale
	s := startBuilding(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild)
	start := time.Now()

	results := s.storm(t, n)
	stormTook := time.Since(start)

	checkEveryoneLaunchedOnTheirOwn(t, results)
	var times []time.Duration
	for _, r := range results {
		times = append(times, r.elapsed)
		if got := persistent(r); got != commitA {
			t.Errorf("client %s got commit %q, want A", r.ip, got)
		}
		if len(r.events) == 0 || !hasMessage(&r.events[0], staleNotice) || r.events[0].Phase != sse.PhaseWaiting {
			t.Errorf("client %s: first event %+v, want the stale notice", r.ip, r.events)
			continue
		}
		if !strings.Contains(r.events[0].Message, "(started less than a minute ago)") || !strings.Contains(r.events[0].Message, "You are getting the version from ") {
			t.Errorf("client %s: notice %q", r.ip, r.events[0].Message)
		}
		for _, e := range r.events[1:] {
			if hasMessage(&e, "binderguard") {
				t.Errorf("client %s got another gate event: %+v", r.ip, e)
			}
		}
	}
	t.Logf("%d stale launches while B builds (%v): p50 %v, p99 %v to ready; the storm took %v",
		n, bBuild, percentile(times, 0.5), percentile(times, 0.99), stormTook)
	if stormTook >= bBuild/2 {
		t.Errorf("the stale launches took %v, want them done well within B's %v build", stormTook, bBuild)
	}
	st := s.sim.Stats()
	if st.BuildsStarted != 2 || st.PeakBuildWatchers != 1 {
		t.Errorf("simulator: builds started %d, peak build watchers %d; want 2 (A, B) and 1", st.BuildsStarted, st.PeakBuildWatchers)
	}
	// The stale launches reach BinderHub without the client's token, which
	// names HEAD: none is refused, and only A's and B's launchers used one.
	if st.BuildTokensRejected != 0 || st.BuildTokensAccepted != 2 {
		t.Errorf("simulator: build tokens rejected %d, accepted %d; want 0 and 2", st.BuildTokensRejected, st.BuildTokensAccepted)
	}
	if got := metricValue(t, s.reg, "binderguard_stale_launches_total", "policy", "static"); got != float64(n) {
		t.Errorf("binderguard_stale_launches_total = %v, want %d", got, n)
	}
	if got := metricValue(t, s.reg, "binderguard_launches_total", "outcome", "stale"); got != float64(n) {
		t.Errorf(`binderguard_launches_total{outcome="stale"} = %v, want %d`, got, n)
	}

	l := <-s.leader
	if persistent(l) != commitB || time.Since(start) < bBuild/2 {
		t.Errorf("leader: got %q after %v, want B after its build", persistent(l), time.Since(start))
	}
	after := s.launch(t.Context(), s.withToken(t), clientIP(1<<20+2), s.origin, nil)
	if persistent(after) != commitB || (len(after.events) > 0 && hasMessage(&after.events[0], staleNotice)) {
		t.Errorf("a launch after B was built: %q, events %+v; want B without a notice", persistent(after), after.events)
	}
	if st := s.sim.Stats(); st.TokensIssued != int64(n)+3 || st.BuildsStarted != 2 {
		t.Errorf("simulator: tokens issued %d, builds %d; want %d (one per launch) and 2", st.TokensIssued, st.BuildsStarted, n+3)
	}
	waitFor(t, "upstream streams to drain", func() bool { return gauge(s.reg, "binderguard_upstream_streams") == 0 })
}

// With the policy off, the same launches are held behind B's build and
// launched as B, as without the feature.
func TestStaleWhileBuildingOffHoldsAsBefore(t *testing.T) {
	const bBuild = 3 * time.Second
	n := 50 / stormScale
	s := startBuilding(t, gate.StaticPolicies(staleLaunch(false), gate.Global{}), bBuild)
	start := time.Now()
	results := s.storm(t, n)

	checkEveryoneLaunchedOnTheirOwn(t, results)
	for _, r := range results {
		if got := persistent(r); got != commitB {
			t.Errorf("client %s got commit %q, want B", r.ip, got)
		}
		for _, e := range r.events {
			if hasMessage(&e, staleNotice) {
				t.Errorf("client %s got the stale notice with the policy off", r.ip)
			}
		}
	}
	if took := time.Since(start); took < bBuild/2 {
		t.Errorf("held launches were ready after %v, before B's build could end", took)
	}
	if got := metricValue(t, s.reg, "binderguard_stale_launches_total"); got != 0 {
		t.Errorf("binderguard_stale_launches_total = %v, want 0", got)
	}
	if st := s.sim.Stats(); st.BuildsStarted != 2 || st.PeakBuildWatchers != 1 {
		t.Errorf("simulator: builds %d, peak watchers %d; want 2 and 1", st.BuildsStarted, st.PeakBuildWatchers)
	}
	<-s.leader
}

// A last good image that is gone (a registry clean-up) costs one probe,
// not a build watcher per launch: the probe sees BinderHub start a build
// and every launch is held behind B's build as without the feature.
func TestStaleLaunchOfAMissingImageFallsBackToBeingHeld(t *testing.T) {
	const bBuild = 3 * time.Second
	n := 40 / stormScale
	s := startBuilding(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild)
	s.sim.Reset() // forgets A's image (and the moved ref: move it again)
	if err := s.sim.SetRef(s.spec, commitB, bBuild); err != nil {
		t.Fatal(err)
	}
	results := s.storm(t, n)

	checkEveryoneLaunchedOnTheirOwn(t, results)
	for _, r := range results {
		if got := persistent(r); got != commitB {
			t.Errorf("client %s got commit %q, want B", r.ip, got)
		}
		for _, e := range r.events {
			if hasMessage(&e, staleNotice) {
				t.Errorf("client %s was told it gets the old version", r.ip)
			}
		}
	}
	if got := metricValue(t, s.reg, "binderguard_stale_launches_total"); got != 0 {
		t.Errorf("binderguard_stale_launches_total = %v, want 0", got)
	}
	// The probe and those that waited for it fell back; later ones were
	// held at once.
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total"); got < 1 || got > float64(n) {
		t.Errorf("binderguard_stale_fallbacks_total = %v, want 1 to %d", got, n)
	}
	// One request asked for A and went away at "waiting"; A's build may
	// run without it, but no launch watched it.
	if st := s.sim.Stats(); st.PeakBuildWatchers > 2 {
		t.Errorf("simulator: peak build watchers %d, want at most 2 (B's leader and the one probe)", st.PeakBuildWatchers)
	}
	l := <-s.leader
	if persistent(l) != commitB {
		t.Errorf("leader got %q, want B", persistent(l))
	}
}

// cutAfterBuilt ends BinderHub's answer to launches of commit A right
// after its built event, as if the binder pod went away mid-launch.
func cutAfterBuilt(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/"+commitA) {
			next.ServeHTTP(w, r)
			return
		}
		rec := &cutWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
	})
}

// cutWriter passes writes through until one carries a built event, then
// fails every later write, which makes the proxy drop the stream.
type cutWriter struct {
	http.ResponseWriter
	cut bool
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.cut {
		return 0, http.ErrAbortHandler
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"phase": "built"`) || strings.Contains(sc.Text(), `"phase":"built"`) {
			c.cut = true
		}
	}
	return c.ResponseWriter.Write(b)
}

func (c *cutWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

// A stale launch whose launch fails after BinderHub found the image is
// held behind the build on the stream it has, and launched with B.
func TestStaleLaunchThatFailsAfterBuiltIsHeld(t *testing.T) {
	const bBuild = 3 * time.Second
	n := 10
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild, cutAfterBuilt)
	results := s.storm(t, n)
	for _, r := range results {
		if got := persistent(r); got != commitB || r.err != nil {
			t.Errorf("client %s got commit %q (err %v), want B; phases %v", r.ip, got, r.err, r.phases())
			continue
		}
		if !hasMessage(&r.events[0], staleNotice) || r.count(sse.PhaseReady) != 1 {
			t.Errorf("client %s: phases %v, want the notice first and one ready", r.ip, r.phases())
		}
		if r.ready.BinderClientIP != r.ip {
			t.Errorf("client %s got the ready event of %s", r.ip, r.ready.BinderClientIP)
		}
	}
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total", "reason", "failed"); got != float64(n) {
		t.Errorf(`binderguard_stale_fallbacks_total{reason="failed"} = %v, want %d`, got, n)
	}
	<-s.leader
}

// If the probing stale launch's client leaves before BinderHub answers,
// one of the launches waiting for it probes instead, and all go stale.
func TestStaleProbeWhoseClientLeavesIsReplaced(t *testing.T) {
	slowA := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/"+commitA) {
				select {
				case <-time.After(500 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), 5*time.Second, slowA)
	probeCtx, leave := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer leave()
	probe := make(chan result, 1)
	go func() { probe <- s.launch(probeCtx, s.withToken(t), clientIP(100), s.origin, nil) }()
	time.Sleep(50 * time.Millisecond)
	results := s.storm(t, 5)
	if p := <-probe; p.ready != nil {
		t.Errorf("the probe whose client left got ready: %+v", p.ready)
	}
	for _, r := range results {
		if got := persistent(r); got != commitA || len(r.events) == 0 || !hasMessage(&r.events[0], staleNotice) {
			t.Errorf("client %s: commit %q, phases %v; want A after the notice", r.ip, got, r.phases())
		}
	}
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total"); got != 0 {
		t.Errorf("binderguard_stale_fallbacks_total = %v, want 0", got)
	}
	<-s.leader
}
