package e2e

// Faults in the middle of a launch storm, through a real Envoy, the xDS
// server, the gate and the simulator. Each test logs one "FAULT" line:
// what users saw, what was lost and how long recovery took, measured in
// that run; the README's fault table is copied from those lines
// (go test ./test/e2e -run 'Fault' -v | grep FAULT). Timings are logged,
// never asserted: only what users read and what reached BinderHub is.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// held is one launch of a storm and when its answer ended.
type held struct {
	a   answer
	end time.Time
}

// jsHeld is the official client's view of one held launch.
type jsHeld struct {
	res compat.Result
	err error
	end time.Time
}

// holdStorm starts a leader for spec through the edge, waits until its
// build shows, then n Go followers and one official client follower, and
// waits until the gate holds all n+1.
func (s *stack) holdStorm(t *testing.T, spec string, n int) (leader chan held, followers []chan held, js chan jsHeld) {
	return s.holdAt(t, spec, n, collapse.Building)
}

// holdAt is holdStorm with the followers started once the leader's flight
// is at stage (collapse.Starting: before BinderHub answered it).
func (s *stack) holdAt(t *testing.T, spec string, n int, stage collapse.Stage) (leader chan held, followers []chan held, js chan jsHeld) {
	t.Helper()
	ctx := s.ctx
	start := func() chan held {
		ch := make(chan held, 1)
		go func() {
			a := launch(ctx, s.edgeURL, spec, 2*time.Minute)
			ch <- held{a: a, end: time.Now()}
		}()
		return ch
	}
	leader = start()
	waitFor(t, 20*time.Second, "the leader's build to show at the gate", func() bool {
		st := s.gate.State()
		return len(st.Hot) > 0 && st.Hot[0].Stage == stage
	})
	for range n {
		followers = append(followers, start())
	}
	js = make(chan jsHeld, 1)
	go func() {
		res, err := compat.Run(ctx, compat.Config{BaseURL: s.edgeURL, Spec: spec, Timeout: 90 * time.Second, Linger: -1})
		js <- jsHeld{res: res, err: err, end: time.Now()}
	}()
	waitFor(t, 30*time.Second, "the storm to be held", func() bool { return s.gateGauge("binderguard_waiters") == n+1 })
	return leader, followers, js
}

// tally sorts what launches got: a failed event (by status_code and the
// start of its message), ready, or a stream that broke without an event.
type tally struct {
	last    time.Time // when the last answer ended
	saw     map[string]int
	ready   int
	broken  int
	brokeBy []string
}

func (ty *tally) add(a answer, end time.Time) {
	if ty.saw == nil {
		ty.saw = map[string]int{}
	}
	ty.last = later(ty.last, end)
	f := a.final()
	switch {
	case f.Phase == sse.PhaseReady:
		ty.ready++
	case f.Phase == sse.PhaseFailed:
		ty.saw[fmt.Sprintf("failed %d %q", f.StatusCode, firstWords(f.Message, 9))]++
	default:
		ty.broken++
		ty.brokeBy = append(ty.brokeBy, fmt.Sprint(a.err))
	}
}

// tallyOf waits for every launch in chs and sorts what each saw.
func tallyOf(chs ...chan held) tally {
	var ty tally
	for _, ch := range chs {
		h := <-ch
		ty.add(h.a, h.end)
	}
	return ty
}

func (ty *tally) String() string {
	var parts []string
	for k, v := range ty.saw {
		parts = append(parts, fmt.Sprintf("%d× %s", v, k))
	}
	if ty.ready > 0 {
		parts = append(parts, fmt.Sprintf("%d× ready", ty.ready))
	}
	if ty.broken > 0 {
		parts = append(parts, fmt.Sprintf("%d× stream broken without an event (%s)", ty.broken, ty.brokeBy[0]))
	}
	return strings.Join(parts, ", ")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	if len(w) > n {
		w = append(w[:n], "…")
	}
	return strings.Join(w, " ")
}

// stopGate stops the gate the way `binderguard serve` and `local` do on
// SIGTERM (serveGate): Close, then the server's Shutdown with a grace.
func (s *stack) stopGate() {
	s.gate.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.gateServer.Shutdown(ctx); err != nil {
		s.gateServer.Close()
	}
}

// restartGate starts a fresh gate (a new process would have fresh state
// and metrics) on the old gate's address.
func (s *stack) restartGate() {
	s.t.Helper()
	var lis net.Listener
	var err error
	for range 50 {
		if lis, err = net.Listen("tcp", s.gateAddr.String()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("gate listen again: %v", err)
	}
	l := s.opts.launch
	if l == (gate.Launch{}) {
		l = gate.DefaultLaunch()
	}
	pol := s.opts.policies
	if pol == nil {
		pol = gate.StaticPolicies(l, gate.Global{})
	}
	u, _ := url.Parse("http://" + s.binderAddr.String())
	cfg := gate.Config{Upstream: u, Policies: pol, Registerer: prometheus.NewRegistry(), Logger: testLogger(s.t)}
	if s.opts.gateTweak != nil {
		s.opts.gateTweak(&cfg)
	}
	s.gateReg, _ = cfg.Registerer.(*prometheus.Registry)
	g, err := gate.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", s.gateHits.wrap(g))
	srv := gate.NewServer("", mux)
	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	go func() { defer wg.Done(); _ = g.Run(ctx) }()
	s.t.Cleanup(func() { cancel(); srv.Close(); g.Close(); wg.Wait() })
	s.gate, s.gateServer = g, srv
}

// timeToGate restarts the gate and returns how long until a launch of a
// fresh spec is served through it again.
func (s *stack) timeToGate(t *testing.T) time.Duration {
	start := time.Now()
	s.restartGate()
	for i := 0; ; i++ {
		spec := fmt.Sprintf("gh/back/n%d/HEAD", i)
		before := s.gateHits.prefix("/build/" + spec)
		a := launch(s.ctx, s.edgeURL, spec, 20*time.Second)
		if a.final().Phase == sse.PhaseReady && s.gateHits.prefix("/build/"+spec) > before {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no launch went through the restarted gate within 30 s: %+v %v", a.events, a.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stopping the gate mid-storm, gracefully (SIGTERM) and abruptly
// (SIGKILL): what the held launches see, what reaches BinderHub while the
// gate is away, and how long until launches go through a gate again.
func TestFaultGateStopsMidStorm(t *testing.T) {
	for _, mode := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(mode, func(t *testing.T) {
			// Other repositories are built already: the launches measured while
			// the gate is away and after it is back are launches, not builds.
			s := startStack(t, options{fb: fakebinder.Config{BuildTime: 60 * time.Second, BuiltSpecs: "^gh/(during|back)/"}})
			const n = 30
			spec := "gh/storm/repo/HEAD"
			lch, fchs, jsch := s.holdStorm(t, spec, n)

			stop := time.Now()
			if mode == "SIGTERM" {
				s.stopGate()
			} else {
				s.killGate() // the listener and every stream cut at once
			}
			ty := tallyOf(append([]chan held{lch}, fchs...)...)
			js := <-jsch
			ty.last = later(ty.last, js.end)
			answered := ty.last.Sub(stop)

			if mode == "SIGTERM" {
				want := fmt.Sprintf("failed 503 %q", firstWords("binderguard is restarting. Please try again in 5 seconds.", 9))
				if ty.saw[want] != n+1 || ty.broken != 0 {
					t.Errorf("after SIGTERM the leader and %d held launches got %s; want every one a 503 'restarting' failed event", n, &ty)
				}
				if js.err != nil || js.res.StatusCode != 503 || !strings.Contains(js.res.Message, "restarting") || js.res.ClosedBy != "client" {
					t.Errorf("official client: %+v (%v), want it to show the 503 'restarting' and stop", js.res, js.err)
				}
			}
			// Launches while the gate is away go straight to BinderHub
			// (the edge's fallback) and work.
			first := time.Now()
			a := launch(s.ctx, s.edgeURL, "gh/during/outage/HEAD", 20*time.Second)
			if a.final().Phase != sse.PhaseReady {
				t.Errorf("launch while the gate is away: %+v (%v), want ready through the fallback", a.events, a.err)
			}
			fallback := time.Since(first)
			st := s.binder.Stats()
			if st.BuildsFailed != 0 {
				t.Errorf("builds failed %d: stopping the gate must not fail the build in BinderHub", st.BuildsFailed)
			}
			back := s.timeToGate(t)
			t.Logf("FAULT gate %s with %d launches held | users saw: %s; official client: %q | lost: the held launches' places (the build went on in BinderHub: %d started, %d failed) | answered %v after the signal; a launch during the outage was ready via the fallback in %v; launches through a restarted gate after %v",
				mode, n+2, &ty, firstWords(js.res.Message, 12), st.BuildsStarted, st.BuildsFailed, answered.Round(time.Millisecond), fallback.Round(time.Millisecond), back.Round(time.Millisecond))
		})
	}
}

// Restarting the control plane mid-storm: Envoy keeps its config, the
// held launches finish, new ones keep working, and the new control plane
// programs Envoy again.
func TestFaultControlPlaneRestartMidStorm(t *testing.T) {
	s := startStack(t, options{fb: fakebinder.Config{BuildTime: 4 * time.Second}})
	lch, fchs, jsch := s.holdStorm(t, "gh/storm/repo/HEAD", 20)
	addr := s.xdsAddr
	down := time.Now()
	s.xdsCancel()
	<-s.xdsDone

	ty := tallyOf(append([]chan held{lch}, fchs...)...)
	js := <-jsch
	if ty.ready != 21 || js.res.FinalPhase != sse.PhaseReady {
		t.Errorf("held launches with the control plane down: %s; official client %q; want all ready", &ty, js.res.FinalPhase)
	}
	a := launch(s.ctx, s.edgeURL, "gh/during/outage/HEAD", 20*time.Second)
	if a.final().Phase != sse.PhaseReady {
		t.Errorf("launch with the control plane down: %+v (%v)", a.events, a.err)
	}
	outage := time.Since(down)

	var wg sync.WaitGroup
	restart := time.Now()
	s.startXDS(&wg, addr, testLogger(t))
	defer func() { s.xdsCancel(); wg.Wait() }()
	s.ctl = newControllerLike(s, s.ctl)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.ctl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s.waitAcked(30 * time.Second)
	reacked := time.Since(restart)
	t.Logf("FAULT control plane restart with 21 launches held | users saw: %s (nothing of the restart) | lost: nothing; config changes wait for the new control plane | Envoy served on its last config for the %v outage and ACKed the new control plane's config %v after it started",
		&ty, outage.Round(time.Millisecond), reacked.Round(time.Millisecond))
}

// BinderHub misbehaving mid-storm: every held launch reads what happened,
// the breaker opens after the policy's failures and answers for the
// repository (at the edge) until it half-opens, BinderHub never sees more
// than one watcher of the build, and launches work again once BinderHub
// does.
func TestFaultBinderHubMisbehaves(t *testing.T) {
	launchPol := gate.DefaultLaunch()
	launchPol.BreakerFailures = 2
	launchPol.BreakerOpen = 3 * time.Second
	launchPol.ReleaseRate = 0
	for name, tc := range map[string]struct {
		fault fakebinder.Fault
		said  string // in the message every held launch reads
	}{
		"stalls mid-stream":            {fakebinder.Fault{Mode: fakebinder.FaultStall, After: 4}, "stopped sending anything"},
		"closes mid-stream":            {fakebinder.Fault{Mode: fakebinder.FaultClose, After: 4}, "closed this launch's stream"},
		"sends bytes that are not SSE": {fakebinder.Fault{Mode: fakebinder.FaultGarbage, After: 4}, "not a stream of launch events"},
		"answers 503":                  {fakebinder.Fault{Mode: fakebinder.FaultStatus, Status: 503, Delay: 5 * time.Second}, "503 Service Unavailable"},
		"answers 429":                  {fakebinder.Fault{Mode: fakebinder.FaultStatus, Status: 429, RetryAfter: 30, Delay: 5 * time.Second}, "429 Too Many Requests"},
		"is slow to send headers":      {fakebinder.Fault{Mode: fakebinder.FaultSlowHeaders, Delay: time.Minute}, "sent no answer for 6s"},
		"is unreachable":               {fakebinder.Fault{Mode: fakebinder.FaultReset, Delay: 5 * time.Second}, "could not reach BinderHub"},
	} {
		t.Run(name, func(t *testing.T) {
			s := startStack(t, options{
				fb:     fakebinder.Config{BuildTime: 8 * time.Second, KeepaliveInterval: 500 * time.Millisecond},
				launch: launchPol,
				gateTweak: func(c *gate.Config) {
					c.UpstreamHeaderTimeout = 6 * time.Second
					c.UpstreamIdleTimeout = 2 * time.Second
				},
			})
			spec := "gh/storm/repo/HEAD"
			const n = 10
			start := time.Now()
			lch, fchs, jsch := s.holdFaulted(t, spec, n, tc.fault)
			ty := tallyOf(append([]chan held{lch}, fchs...)...)
			js := <-jsch
			ty.last = later(ty.last, js.end)
			answered := ty.last.Sub(start)
			if ty.broken != 0 || ty.ready != 0 {
				t.Errorf("launches got %s; want every one a failed event", &ty)
			}
			for k := range ty.saw {
				if !strings.Contains(k, firstWords(tc.said, 9)) && !strings.Contains(k, "BinderHub") {
					t.Errorf("a launch read %s, which does not say what BinderHub did (%q)", k, tc.said)
				}
			}
			if js.err != nil || js.res.FinalPhase != sse.PhaseFailed || !strings.Contains(js.res.Message, tc.said) || js.res.ClosedBy != "client" {
				t.Errorf("official client: %q status %d %q closed by %q (%v); want a failed event saying %q and a stop", js.res.FinalPhase, js.res.StatusCode, js.res.Message, js.res.ClosedBy, js.err, tc.said)
			}
			st := s.binder.Stats()
			if st.PeakBuildWatchers > 1 {
				t.Errorf("peak build watchers in BinderHub %d, want at most 1", st.PeakBuildWatchers)
			}
			// The breaker opens after the policy's failures (the storm was
			// one; a fault before the stream fails everyone with it, so a
			// second launch may be needed) and then answers for the
			// repository, at the edge or the gate, before BinderHub.
			extra := 0
			for a := launch(s.ctx, s.edgeURL, spec, 30*time.Second); !strings.Contains(a.final().Message, "Recent builds of"); a = launch(s.ctx, s.edgeURL, spec, 30*time.Second) {
				if extra++; extra > 2 {
					t.Fatalf("the breaker never opened: last launch got %+v (%v)", a.events, a.err)
				}
			}
			before := s.binderHits.prefix("/build/" + spec)
			a := launch(s.ctx, s.edgeURL, spec, 10*time.Second)
			if f := a.final(); f.Phase != sse.PhaseFailed || f.StatusCode != 503 || !strings.Contains(f.Message, "Recent builds of") || a.header.Get("Retry-After") == "" {
				t.Errorf("launch with the breaker open: %+v (%v), Retry-After %q; want the open breaker's 503", a.events, a.err, a.header.Get("Retry-After"))
			}
			if d := s.binderHits.prefix("/build/"+spec) - before; d != 0 {
				t.Errorf("%d launches reached BinderHub with the breaker open", d)
			}
			// BinderHub recovers: launches work again once the breaker
			// half-opens and its probe build succeeds.
			fixed := time.Now()
			if err := s.binder.SetFault(fakebinder.Fault{}); err != nil {
				t.Fatal(err)
			}
			for {
				a := launch(s.ctx, s.edgeURL, spec, 30*time.Second)
				if a.final().Phase == sse.PhaseReady {
					break
				}
				if time.Since(fixed) > 60*time.Second {
					t.Fatalf("launches not ready 60 s after BinderHub recovered: %+v (%v)", a.events, a.err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			recovered := time.Since(fixed)
			t.Logf("FAULT BinderHub %s with %d launches held | users saw: %s; official client: %q | lost: the held launches (told to retry); BinderHub saw %d requests, at most %d build watcher | every launch answered within %v; %d more launch(es) before the breaker opened and answered for the repository; ready again %v after BinderHub recovered (breaker open %v, then one probe build of %v)",
				name, n+2, &ty, firstWords(js.res.Message, 14), st.Requests, st.PeakBuildWatchers, answered.Round(time.Millisecond), extra, recovered.Round(time.Millisecond), launchPol.BreakerOpen, 8*time.Second)
		})
	}
}

// holdFaulted holds a storm of spec at the gate with fault injected: a
// mid-stream fault once the leader's build shows, any other before the
// leader's request, so that the storm is held while BinderHub answers
// (or does not).
func (s *stack) holdFaulted(t *testing.T, spec string, n int, f fakebinder.Fault) (chan held, []chan held, chan jsHeld) {
	t.Helper()
	midStream := f.Mode == fakebinder.FaultStall || f.Mode == fakebinder.FaultClose || f.Mode == fakebinder.FaultGarbage
	if midStream {
		if err := s.binder.SetFault(f); err != nil {
			t.Fatal(err)
		}
		return s.holdStorm(t, spec, n)
	}
	// The others strike after their Delay, before BinderHub answers: the
	// followers are held behind a leader still waiting for its answer.
	if err := s.binder.SetFault(f); err != nil {
		t.Fatal(err)
	}
	return s.holdAt(t, spec, n, collapse.Starting)
}

// metricOf reads one unlabelled metric from a Prometheus text page.
func metricOf(u, name string) float64 {
	resp, err := http.Get(u)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// holdStorm starts a leader of spec through ls's Envoy, waits for its
// build to start, then n more launches, and waits until the gate holds
// them; each channel gets what one launch saw.
func (ls *localStack) holdStorm(t *testing.T, spec string, n int) []chan held {
	t.Helper()
	var chs []chan held
	start := func() {
		ch := make(chan held, 1)
		chs = append(chs, ch)
		go func() {
			a := launch(context.Background(), ls.edgeURL, spec, 90*time.Second)
			ch <- held{a: a, end: time.Now()}
		}()
	}
	start()
	waitFor(t, 20*time.Second, "the leader's build to start", func() bool { return ls.binderHits.prefix("/build/"+spec) == 1 })
	for range n {
		start()
	}
	waitFor(t, 20*time.Second, "the storm to be held", func() bool { return metricOf(ls.metricsURL+"/metrics", "binderguard_waiters") == float64(n) })
	return chs
}

// SIGTERM to `binderguard local` with launches held: each is told to
// retry, through Envoy, before the process exits; none is left on a
// stream that just breaks.
func TestFaultLocalSIGTERMWithLaunchesHeld(t *testing.T) {
	ls := startLocal(t, fakebinder.Config{BuildTime: 60 * time.Second, BuiltSpecs: "^gh/warm/"})
	spec := "gh/storm/repo/HEAD"
	const n = 20
	chs := ls.holdStorm(t, spec, n)

	sig := time.Now()
	if err := ls.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var exited time.Duration
	select {
	case err := <-ls.exited:
		exited = time.Since(sig)
		if err != nil {
			t.Errorf("binderguard local exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("binderguard local did not stop within 20 s of SIGTERM")
	}
	ty := tallyOf(chs...)
	want := fmt.Sprintf("failed 503 %q", firstWords("binderguard is restarting. Please try again in 5 seconds.", 9))
	if ty.saw[want] != n+1 {
		t.Errorf("after SIGTERM the %d launches got %s; want every one a 503 'restarting' failed event", n+1, &ty)
	}
	t.Logf("FAULT binderguard local SIGTERM with %d launches held | users saw: %s | lost: the held launches' places (the build goes on in BinderHub) | every launch answered %v after the signal, the process (and its Envoy) gone after %v",
		n+1, &ty, ty.last.Sub(sig).Round(time.Millisecond), exited.Round(time.Millisecond))
}

// Envoy killed mid-storm under `binderguard local`: the held launches'
// streams die with it (nothing is left to send them an event), the gate
// lets go of them, and local restarts Envoy; a retry then attaches to the
// build that went on in BinderHub.
func TestFaultLocalEnvoyKilledMidStorm(t *testing.T) {
	ls := startLocal(t, fakebinder.Config{BuildTime: 15 * time.Second, BuiltSpecs: "^gh/(warm|back)/"})
	spec := "gh/storm/repo/HEAD"
	const n = 20
	chs := ls.holdStorm(t, spec, n)

	envoyPID := childPID(t, ls.cmd.Process.Pid)
	kill := time.Now()
	if err := syscall.Kill(envoyPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ty := tallyOf(chs...)
	waitFor(t, 10*time.Second, "the gate to let go of the held launches", func() bool { return metricOf(ls.metricsURL+"/metrics", "binderguard_waiters") == 0 })
	var back time.Duration
	for i := 0; ; i++ {
		a := launch(context.Background(), ls.edgeURL, fmt.Sprintf("gh/back/n%d/HEAD", i), 5*time.Second)
		if a.final().Phase == sse.PhaseReady {
			back = time.Since(kill)
			break
		}
		if time.Since(kill) > 30*time.Second {
			t.Fatalf("no launch ready 30 s after Envoy was killed: %+v %v", a.events, a.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A retry of the storm's repository attaches to the build that went on.
	retry := launch(context.Background(), ls.edgeURL, spec, 90*time.Second)
	if retry.final().Phase != sse.PhaseReady {
		t.Errorf("retry after the restart: %+v (%v), want ready", retry.events, retry.err)
	}
	if n := ls.binderHits.prefix("/build/" + spec); n > 2 {
		t.Errorf("BinderHub saw %d requests for the storm's repository, want the leader's and the retry's", n)
	}
	t.Logf("FAULT Envoy killed (binderguard local) with %d launches held | users saw: %s | lost: the held launches' streams (the build went on in BinderHub; a retry attached to it) | launches ready again %v after the kill (local restarts Envoy)",
		n+1, &ty, back.Round(time.Millisecond))
}
