package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/freeport"
	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/controller"
	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/server"
	"github.com/binderguard/binderguard/xds/translate"
)

// options vary a stack.
type options struct {
	delta        bool
	fb           fakebinder.Config
	launch       gate.Launch
	edgeLaunch   ir.Launch
	gateBreakers ir.Breakers
	policies     gate.Policies // the gate's; nil: StaticPolicies of launch
	xffHops      uint32
	logLevel     string
	// headersTimeout is the edge's request headers timeout (0: default);
	// maxConnections Envoy's global downstream connection cap (0: default).
	headersTimeout time.Duration
	maxConnections int64
	builtTTL       time.Duration      // the gate's Config.BuiltTTL; 0: its default
	gateTweak      func(*gate.Config) // adjusts the gate's config, if set
	// binderWrap, if set, wraps the simulator's handler (headers a real
	// BinderHub's configuration adds, for example).
	binderWrap func(http.Handler) http.Handler
	// corsOrigin is binderguard's --cors-allow-origin, given to the gate
	// and the edge as cmd/binderguard's data path does.
	corsOrigin string
}

// hits counts requests per path prefix seen by a handler.
type hits struct {
	mu     sync.Mutex
	n      map[string]int
	realIP map[string]string // last X-Real-Ip per path
	proto  map[string]int    // last HTTP major version per path
}

func (h *hits) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		if h.n == nil {
			h.n = map[string]int{}
		}
		if h.realIP == nil {
			h.realIP, h.proto = map[string]string{}, map[string]int{}
		}
		h.n[r.URL.EscapedPath()]++
		h.realIP[r.URL.EscapedPath()] = r.Header.Get("X-Real-Ip")
		h.proto[r.URL.EscapedPath()] = r.ProtoMajor
		h.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// prefix returns how many requests had a path starting with p.
func (h *hits) prefix(p string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for k, v := range h.n {
		if strings.HasPrefix(k, p) {
			n += v
		}
	}
	return n
}

// seen returns the X-Real-Ip and HTTP major version of the last request for path.
func (h *hits) seen(path string) (string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.realIP[path], h.proto[path]
}

// stack is one running Envoy + xDS + gate + simulator.
type stack struct {
	t    testing.TB
	ctx  context.Context
	opts options

	binder     *fakebinder.Server
	binderHits hits
	binderAddr ir.Endpoint

	gate       *gate.Gate
	gateHits   hits
	gateAddr   ir.Endpoint
	gateServer *http.Server

	xds       *server.Server
	xdsAddr   string
	xdsCancel context.CancelFunc
	xdsDone   chan struct{}
	ctl       *controller.Controller

	// reg holds the gate's and xDS server's metrics, as binderguard's
	// /metrics serves them; metricsURL serves it on loopback.
	reg        *prometheus.Registry
	metricsURL string
	// gateReg holds the metrics of the gate now serving: reg, or a
	// restarted gate's own registry.
	gateReg *prometheus.Registry

	envoy    *envoyproc.Supervisor
	envoyLog string
	edgeURL  string
	adminURL string
	statsURL string
}

// freePort is a loopback port for Envoy to bind (see package freeport).
func freePort(t testing.TB) uint32 {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}

func listen(t testing.TB) (net.Listener, ir.Endpoint) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	return l, ir.Endpoint{Host: "127.0.0.1", Port: uint32(l.Addr().(*net.TCPAddr).Port)}
}

// envoyBinary fails the test, naming what to do, when Envoy is missing.
func envoyBinary(t testing.TB) string {
	t.Helper()
	p, err := envoyproc.Find()
	if err != nil {
		t.Fatalf("these tests need a real Envoy: %v", err)
	}
	return p
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("E2E_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startStack starts everything and waits until Envoy has ACKed the config
// and serves traffic.
func startStack(t testing.TB, o options) *stack {
	t.Helper()
	bin := envoyBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{t: t, ctx: ctx, opts: o, reg: prometheus.NewRegistry()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	log := testLogger(t)

	// BinderHub simulator.
	if o.fb.BuildTime == 0 {
		o.fb.BuildTime = 500 * time.Millisecond
	}
	if o.fb.LaunchTime == 0 {
		o.fb.LaunchTime = 50 * time.Millisecond
	}
	if o.fb.ReadyHold == 0 {
		o.fb.ReadyHold = 10 * time.Millisecond
	}
	fb, err := fakebinder.New(o.fb)
	if err != nil {
		t.Fatalf("starting simulator: %v", err)
	}
	s.binder = fb
	bl, bep := listen(t)
	s.binderAddr = bep
	bh := fb.Handler()
	if o.binderWrap != nil {
		bh = o.binderWrap(bh)
	}
	bsrv := &http.Server{Handler: s.binderHits.wrap(bh), ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() { defer wg.Done(); _ = bsrv.Serve(bl) }()
	context.AfterFunc(ctx, func() { fb.Close(); bsrv.Close() })

	// binderguard's /metrics.
	ml, mep := listen(t)
	s.metricsURL = "http://" + mep.String() + "/metrics"
	msrv := &http.Server{Handler: promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() { defer wg.Done(); _ = msrv.Serve(ml) }()
	context.AfterFunc(ctx, func() { msrv.Close() })

	// Launch gate.
	s.startGate(&wg, log)

	// xDS server and controller.
	s.startXDS(&wg, "127.0.0.1:0", log)

	// Envoy.
	adminPort, statsPort, edgePort := freePort(t), freePort(t), freePort(t)
	s.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.statsURL = fmt.Sprintf("http://127.0.0.1:%d", statsPort)
	s.edgeURL = fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	base := ir.Edge{
		Listener: ir.Listener{Address: ir.Endpoint{Host: "127.0.0.1", Port: edgePort}, XFFNumTrustedHops: o.xffHops,
			RequestHeadersTimeout: o.headersTimeout},
		Binder:          ir.Upstream{Endpoint: s.binderAddr},
		Gate:            ir.Gate{Endpoints: []ir.Endpoint{s.gateAddr}, HealthInterval: 250 * time.Millisecond, Breakers: o.gateBreakers},
		Launch:          o.edgeLaunch,
		CORSAllowOrigin: o.corsOrigin,
	}
	s.ctl = controller.New(base, s.xds, log)
	if err := s.ctl.Sync(ctx); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.ctl.Run(ctx) }()
	go func() { defer wg.Done(); controller.WatchGate(ctx, s.gate, s.ctl) }()

	xdsAddr, _ := ir.ParseEndpoint(s.xdsAddr, "127.0.0.1")
	y, err := bootstrap.YAML(bootstrap.Config{
		NodeID: "e2e-" + t.Name(), XDS: xdsAddr, Delta: o.delta,
		Admin:          ir.Endpoint{Host: "127.0.0.1", Port: adminPort},
		Stats:          ir.Endpoint{Host: "127.0.0.1", Port: statsPort},
		MaxConnections: o.maxConnections,
	})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	s.envoyLog = filepath.Join(t.TempDir(), "envoy.log")
	logf, err := os.Create(s.envoyLog)
	if err != nil {
		t.Fatal(err)
	}
	lvl := o.logLevel
	if lvl == "" {
		lvl = "warn"
	}
	s.envoy, err = envoyproc.New(envoyproc.Config{Binary: bin, Bootstrap: y, Output: logf, Logger: log, LogLevel: lvl,
		Args: []string{"--concurrency", "2"}})
	if err != nil {
		t.Fatalf("envoy: %v", err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); defer logf.Close(); _ = s.envoy.Run(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(s.envoyLog)
			t.Logf("envoy log (tail):\n%s", tail(b, 40))
		}
	})
	s.waitServing()
	return s
}

func (s *stack) startGate(wg *sync.WaitGroup, log *slog.Logger) {
	l := s.opts.launch
	if l == (gate.Launch{}) {
		l = gate.DefaultLaunch()
	}
	u, _ := url.Parse("http://" + s.binderAddr.String())
	pol := s.opts.policies
	if pol == nil {
		pol = gate.StaticPolicies(l, gate.Global{})
	}
	cfg := gate.Config{Upstream: u, Policies: pol, Registerer: s.reg, Logger: log.With("component", "gate"), BuiltTTL: s.opts.builtTTL,
		CORSAllowOrigin: s.opts.corsOrigin}
	if s.opts.gateTweak != nil {
		s.opts.gateTweak(&cfg)
	}
	s.gateReg, _ = cfg.Registerer.(*prometheus.Registry)
	g, err := gate.New(cfg)
	if err != nil {
		s.t.Fatalf("gate: %v", err)
	}
	s.gate = g
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", s.gateHits.wrap(g))
	gl, gep := listen(s.t)
	s.gateAddr = gep
	s.gateServer = gate.NewServer("", mux)
	ctx, cancel := context.WithCancel(s.ctx)
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.gateServer.Serve(gl) }()
	go func() { defer wg.Done(); _ = g.Run(ctx) }()
	context.AfterFunc(s.ctx, func() { cancel(); s.gateServer.Close(); g.Close() })
}

// killGate stops the gate abruptly: its listener and every stream.
func (s *stack) killGate() {
	s.gateServer.Close()
	s.gate.Close()
}

// startXDS serves ADS on addr with a fresh server; the controller, when
// there is one, is re-pointed by the caller.
func (s *stack) startXDS(wg *sync.WaitGroup, addr string, log *slog.Logger) {
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old port may linger briefly after a stop
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("xds listen: %v", err)
	}
	s.xdsAddr = lis.Addr().String()
	// A restarted server's metrics clash with the first one's: logged, not
	// registered, as in a restarted binderguard process they would be fresh.
	s.xds = server.New(server.Config{Logger: log.With("component", "xds"), Registerer: s.reg})
	ctx, cancel := context.WithCancel(s.ctx)
	s.xdsCancel, s.xdsDone = cancel, make(chan struct{})
	done := s.xdsDone
	wg.Add(1)
	go func() { defer wg.Done(); defer close(done); _ = s.xds.Serve(ctx, lis) }()
}

// waitAcked waits until Envoy has ACKed every type's current version.
func (s *stack) waitAcked(timeout time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	for _, typ := range []string{resource.ClusterType, resource.ListenerType, resource.RouteType, resource.ExtensionConfigType} {
		if err := s.xds.WaitAcked(ctx, typ, s.xds.Version(typ)); err != nil {
			s.t.Fatalf("envoy did not ack: %v", err)
		}
	}
}

// waitServing waits for the ACKs and for the edge listener to answer.
func (s *stack) waitServing() {
	s.t.Helper()
	s.waitAcked(30 * time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.edgeURL + "/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("envoy never served %s/versions: %v", s.edgeURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The gate cluster must be healthy before launches are routed to it.
	s.waitGateHealth(true, 15*time.Second)
}

// waitGateHealth waits until Envoy sees the gate host healthy (or not).
func (s *stack) waitGateHealth(healthy bool, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.adminStat("cluster.gate.membership_healthy")
		if (got == "1") == healthy {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("gate cluster membership_healthy = %q, want healthy=%v", got, healthy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminStat reads one stat from Envoy's admin interface ("" if absent).
func (s *stack) adminStat(name string) string {
	resp, err := http.Get(s.adminURL + "/stats?filter=^" + url.QueryEscape(strings.ReplaceAll(name, ".", `\.`)) + "$")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// answer is what a launch got.
type answer struct {
	status int
	header http.Header
	events []sse.Payload
	err    error
}

// final is the last event's phase ("" when none).
func (a answer) final() sse.Payload {
	if len(a.events) == 0 {
		return sse.Payload{}
	}
	return a.events[len(a.events)-1]
}

// launch GETs /build/<spec> through base and reads events until failed,
// ready, the end of the stream or the timeout.
func launch(ctx context.Context, base, spec string, timeout time.Duration) answer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/build/"+spec, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	rd := sse.NewReader(bufio.NewReader(resp.Body))
	for {
		ev, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				a.err = err
			}
			return a
		}
		if ev.IsComment() {
			continue
		}
		p, err := ev.Decode()
		if err != nil {
			a.err = err
			return a
		}
		a.events = append(a.events, p)
		if p.Phase == sse.PhaseFailed || p.Phase == sse.PhaseReady {
			return a
		}
	}
}

func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// edge returns a copy of what the controller programs now.
func (s *stack) edge() *ir.Edge { return s.ctl.Edge() }

// resources translates the current edge.
func (s *stack) resources() *translate.Resources {
	s.t.Helper()
	res, err := translate.Translate(s.edge())
	if err != nil {
		s.t.Fatalf("translate: %v", err)
	}
	return res
}

// waitRouteAcked waits until the controller's latest config is published
// and Envoy has ACKed its route version.
func (s *stack) waitRouteAcked() {
	s.t.Helper()
	if err := s.ctl.Sync(s.ctx); err != nil {
		s.t.Fatalf("sync: %v", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	// Bans are in the ECDS ban shards, hot specs in the routes.
	for _, typ := range []string{resource.RouteType, resource.ExtensionConfigType} {
		if err := s.xds.WaitAcked(ctx, typ, s.xds.Version(typ)); err != nil {
			s.t.Fatal(err)
		}
	}
}

// newControllerLike makes a controller for s.xds with old's inputs, as a
// restarted binderguard would.
func newControllerLike(s *stack, old *controller.Controller) *controller.Controller {
	e := old.Edge()
	c := controller.New(*e, s.xds, testLogger(s.t))
	c.SetBans(e.Blocks)
	return c
}

// adminStats returns the admin stats whose names match the regex filter.
func (s *stack) adminStats(filter string) string {
	resp, err := http.Get(s.adminURL + "/stats?filter=" + url.QueryEscape(filter))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probeBan sends a launch of path (under a banned prefix) that the gate
// refuses by itself, its spec being over gate.MaxSpecBytes, and returns
// its class: the gate's "invalid" until the ban reaches Envoy, the edge's
// "banned" after, and it never reaches BinderHub. A GET, since only a GET
// is a launch at the edge.
func probeBan(c *http.Client, base, path string) string {
	req, err := http.NewRequest(http.MethodGet, base+path+"/"+strings.Repeat("x", gate.MaxSpecBytes), nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Binderguard-Class")
}
