package gate_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// faultStack is a stack whose gate gives up on a silent BinderHub fast.
func faultStack(t *testing.T, failures int) *stack {
	sim := fastSim()
	sim.BuildTime = 6 * time.Second
	l := testLaunch()
	l.BreakerFailures = failures
	return startStack(t, sim, gate.StaticPolicies(l, gate.Global{}), func(c *gate.Config) {
		c.UpstreamHeaderTimeout = time.Second
		c.UpstreamIdleTimeout = 1500 * time.Millisecond // the simulator's keepalive is 1 s
	})
}

// afterOpen checks the breaker answers the next launch itself, with a
// retry, without a request to BinderHub.
func afterOpen(t *testing.T, s *stack, spec string) {
	t.Helper()
	before := s.sim.Stats().Requests
	r := s.launch(t.Context(), spec, clientIP(999), nil, nil)
	if r.failed == nil || r.failed.StatusCode != 503 || !hasMessage(r.failed, "Recent builds of") || r.header.Get("Retry-After") == "" {
		t.Errorf("launch after the breaker opened: %v %+v (Retry-After %q), want a 503 from the open breaker", r.phases(), r.failed, r.header.Get("Retry-After"))
	}
	if n := s.sim.Stats().Requests - before; n != 0 {
		t.Errorf("%d requests reached BinderHub while the breaker was open", n)
	}
}

// BinderHub breaking a build's stream mid-build: the leader's client is
// told what happened, one held launch re-attaches while the breaker
// allows (BinderHub's build may go on), and when the breaker opens every
// held launch is told what happened and when to retry. None hangs.
func TestBinderHubBreakingTheStreamMidBuild(t *testing.T) {
	for name, tc := range map[string]struct {
		fault fakebinder.Fault
		said  string
		code  int
	}{
		"stalls":                       {fault: fakebinder.Fault{Mode: fakebinder.FaultStall, After: 4}, said: "stopped sending anything", code: 504},
		"closes the stream":            {fault: fakebinder.Fault{Mode: fakebinder.FaultClose, After: 4}, said: "closed this launch's stream", code: 502},
		"sends bytes that are not SSE": {fault: fakebinder.Fault{Mode: fakebinder.FaultGarbage, After: 4}, said: "not a stream of launch events", code: 502},
	} {
		t.Run(name, func(t *testing.T) {
			s := faultStack(t, 2)
			if err := s.sim.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			spec := "gh/org/repo/HEAD"
			start := time.Now()
			lch, fchs := s.leaderThenFollowers(t, t.Context(), t.Context(), spec, 5)
			leader, followers := <-lch, collect(fchs)
			took := time.Since(start)
			if leader.failed == nil || leader.failed.StatusCode != tc.code || !hasMessage(leader.failed, tc.said) || !hasMessage(leader.failed, "try again") {
				t.Errorf("leader: %v %+v, want a %d failed event saying BinderHub %s", leader.phases(), leader.failed, tc.code, name)
			}
			promoted, told := 0, 0
			for i, r := range followers {
				switch {
				case r.failed == nil:
					t.Errorf("follower %d: %v (%v), want a failed event", i, r.phases(), r.err)
				case r.failed.StatusCode == tc.code && hasMessage(r.failed, tc.said):
					promoted++ // led the second try, and got its own stream's fault
				case r.failed.StatusCode == 503 && hasMessage(r.failed, tc.said) && hasMessage(r.failed, "Please try again in"):
					told++
				default:
					t.Errorf("follower %d: %+v, want what happened and when to retry", i, r.failed)
				}
			}
			if promoted != 1 || told != 4 {
				t.Errorf("%d followers re-attached and %d were told to retry; want 1 and 4 (breaker opens after 2 failures)", promoted, told)
			}
			if st := s.sim.Stats(); st.PeakBuildWatchers > 1 {
				t.Errorf("peak build watchers %d, want 1: a re-attach must follow the broken stream, not overlap it", st.PeakBuildWatchers)
			}
			if n := metricValue(t, s.reg, "binderguard_upstream_faults_total"); n != 2 {
				t.Errorf("upstream faults counted %v, want 2", n)
			}
			afterOpen(t, s, spec)
			t.Logf("BinderHub %s: every held launch answered within %v", name, took.Round(10*time.Millisecond))
		})
	}
}

// BinderHub failing before it sends a byte, while launches are held: the
// leader and every held launch get a failed event that says what
// happened, and the breaker opens.
func TestBinderHubFailingBeforeTheStream(t *testing.T) {
	for name, tc := range map[string]struct {
		fault fakebinder.Fault
		said  string
		code  int
	}{
		"slow to send headers": {fault: fakebinder.Fault{Mode: fakebinder.FaultSlowHeaders, Delay: 30 * time.Second}, said: "sent no answer for 1s", code: 504},
		"answers 503":          {fault: fakebinder.Fault{Mode: fakebinder.FaultStatus, Status: 503, Delay: 500 * time.Millisecond}, said: "503 Service Unavailable", code: 503},
		"answers 429":          {fault: fakebinder.Fault{Mode: fakebinder.FaultStatus, Status: 429, RetryAfter: 20, Delay: 500 * time.Millisecond}, said: "429 Too Many Requests", code: 429},
	} {
		t.Run(name, func(t *testing.T) {
			s := faultStack(t, 1)
			if err := s.sim.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			spec := "gh/org/repo/HEAD"
			ctx := t.Context()
			lch := make(chan result, 1)
			go func() { lch <- s.launch(ctx, spec, clientIP(0), nil, nil) }()
			waitFor(t, "the leader's flight", func() bool { return len(s.gate.State().Hot) == 1 })
			var fchs []chan result
			for i := 1; i <= 5; i++ {
				ch := make(chan result, 1)
				fchs = append(fchs, ch)
				go func() { ch <- s.launch(ctx, spec, clientIP(i), nil, nil) }()
			}
			waitFor(t, "followers held", func() bool { return gauge(s.reg, "binderguard_waiters") == 5 })
			leader := <-lch
			if leader.failed == nil || leader.failed.StatusCode != tc.code || !hasMessage(leader.failed, tc.said) {
				t.Errorf("leader: %v %+v (%v), want a %d failed event saying %q", leader.phases(), leader.failed, leader.err, tc.code, tc.said)
			}
			for i, r := range collect(fchs) {
				if r.failed == nil || r.failed.StatusCode < 500 || !hasMessage(r.failed, tc.said) || !hasMessage(r.failed, "try again") {
					t.Errorf("follower %d: %v %+v, want a failed event saying %q", i, r.phases(), r.failed, tc.said)
				}
			}
			afterOpen(t, s, spec)
		})
	}
}

// An unreachable BinderHub: the launch is told so at once, and after the
// policy's failures the breaker answers for it.
func TestUnreachableBinderHubOpensTheBreaker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	u, _ := url.Parse(dead)
	l := testLaunch()
	l.BreakerFailures = 2
	g, err := gate.New(gate.Config{Upstream: u, Policies: gate.StaticPolicies(l, gate.Global{})})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptestServer(t, g)
	for i := range 2 {
		r := launchURL(t.Context(), http.DefaultClient, srv+"/build/gh/o/r/HEAD", clientIP(i), nil, nil)
		if r.failed == nil || r.failed.StatusCode != 502 || !hasMessage(r.failed, "could not reach BinderHub") {
			t.Errorf("launch %d: %v %+v (%v), want a 502 saying BinderHub is unreachable", i, r.phases(), r.failed, r.err)
		}
	}
	r := launchURL(t.Context(), http.DefaultClient, srv+"/build/gh/o/r/HEAD", clientIP(3), nil, nil)
	if r.failed == nil || r.failed.StatusCode != 503 || !strings.Contains(r.failed.Message, "Recent builds") || r.header.Get("Retry-After") == "" {
		t.Errorf("third launch: %+v, want the open breaker's 503 with Retry-After", r.failed)
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gate.NewServer("", h)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}
