package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// Config configures a Gate. Upstream and Policies are required.
type Config struct {
	// Upstream is BinderHub's base URL, e.g. http://binder:8585.
	Upstream *url.URL
	Policies Policies
	// Registerer gets the gate's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Transport carries upstream requests; nil uses NewTransport().
	Transport http.RoundTripper
	// TrustedPeers may set X-Real-Ip; empty trusts every peer (see the
	// package doc for the trust model).
	TrustedPeers []netip.Prefix
	// OnBanned, if set, is called with Ban.Policy for each launch the gate
	// refuses for an Enforce-mode ban (RepoBan status counts them). It must
	// not block.
	OnBanned func(policy string)

	// KeepaliveInterval spaces ":keepalive" comments to held followers;
	// default 15 s, inside every idle timeout on the path (Envoy's stream
	// idle timeout defaults to 5 min, browsers and proxies often 30-60 s).
	KeepaliveInterval time.Duration
	// ProgressInterval spaces the progress events of a held launch (its
	// place in line, the repository's recent build times, how long this
	// build has gone); default 15 s. They replace keepalives when due.
	ProgressInterval time.Duration
	// UpstreamHeaderTimeout bounds the wait for BinderHub's response
	// headers, UpstreamIdleTimeout the silence on its stream after them
	// (no launch event, no keepalive); either ends the stream as a
	// BinderHub fault. Defaults 60 s and 75 s: BinderHub flushes a
	// keepalive every 25 s from the start of a /build request.
	UpstreamHeaderTimeout, UpstreamIdleTimeout time.Duration
	// BuiltTTL is how long launches of a spec whose image was seen built
	// pass straight through; default 60 s.
	BuiltTTL time.Duration
	// ReplayEvents and ReplayBytes bound the build log kept per spec for
	// followers that arrive late; default 100 events (BinderHub's
	// log_tail_lines) and 256 KiB.
	ReplayEvents, ReplayBytes int
	// ShedRetryAfter is the Retry-After of a 429; default 30 s.
	ShedRetryAfter time.Duration
	// TokenMargin: a held launch's build_token that expires within it is
	// swapped for a newer one on release or promotion, or dropped when
	// there is none; default 30 s (the time to reach BinderHub, with room
	// for clock skew between the two pods).
	TokenMargin time.Duration
	// StateInterval is how often a changed State is published; default
	// 250 ms.
	StateInterval time.Duration
	// HotSpecs bounds the specs in State; MetricSpecs the specs with their
	// own metric series. Defaults 100 and 10.
	HotSpecs, MetricSpecs int
	// MaxBreakers bounds the per-key breakers kept; idle closed ones are
	// evicted after BreakerIdle. Defaults 10,000 and 10 min.
	MaxBreakers int
	BreakerIdle time.Duration
	// CORSAllowOrigin is the site's BinderHub cors_allow_origin. When set,
	// every answer the gate makes itself on /build (a held follower's
	// stream, a rejection, a stale launch's failure) carries it as
	// Access-Control-Allow-Origin, with Access-Control-Allow-Headers:
	// cache-control, as BinderHub's own answers do (base.py
	// BaseHandler.set_default_headers); a page on another site can read
	// nothing else. Answers copied from BinderHub keep BinderHub's
	// headers. Empty: none (BinderHub's default).
	CORSAllowOrigin string
	// LastGoodSpecs bounds the build keys whose last good commit is kept
	// for stale launches (only keys whose policy has them on); the one
	// seen longest ago is forgotten first. Default 10,000 (about 2 MiB).
	LastGoodSpecs int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	def(&c.KeepaliveInterval, 15*time.Second)
	def(&c.ProgressInterval, 15*time.Second)
	def(&c.UpstreamHeaderTimeout, 60*time.Second)
	def(&c.UpstreamIdleTimeout, 75*time.Second)
	def(&c.BuiltTTL, 60*time.Second)
	def(&c.ShedRetryAfter, 30*time.Second)
	def(&c.TokenMargin, 30*time.Second)
	def(&c.StateInterval, 250*time.Millisecond)
	def(&c.BreakerIdle, 10*time.Minute)
	defInt(&c.ReplayEvents, 100)
	defInt(&c.ReplayBytes, 256<<10)
	defInt(&c.HotSpecs, 100)
	defInt(&c.MetricSpecs, 10)
	defInt(&c.MaxBreakers, 10000)
	defInt(&c.LastGoodSpecs, 10000)
}

// Gate is the launch gate. It is an http.Handler for /build/; Run
// publishes its State and evicts idle breakers.
type Gate struct {
	cfg Config
	hub binderHub
	log *slog.Logger
	m   *metrics

	// ctx ends with Close; it owns the releaser goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	flights    map[string]*flight
	builtUntil map[string]time.Time
	counts     counts
	breakers   breakers
	lastGood   lastGoods // for stale launches (stale.go)
	buildTimes *collapse.BuildTimes
	global     Global // last seen, for the releasers

	// pub publishes State (state.go); its dirty flag is set under mu or
	// from breaker callbacks, never needing mu itself.
	pub publisher
}

// Outcomes passed to a breaker's done callback.
var (
	errBuildFailed  = errors.New("build failed")
	errBuildTooLong = errors.New("build took longer than the policy allows")
	errUnreachable  = errors.New("BinderHub unreachable")
	errAbandoned    = errors.New("every launch left before the build ended")
	errRefused      = errors.New("BinderHub refused the spec before any build")
)

// New returns a Gate.
func New(cfg Config) (*Gate, error) {
	if cfg.Upstream == nil || cfg.Upstream.Scheme == "" || cfg.Upstream.Host == "" {
		return nil, errors.New("gate: an upstream URL with scheme and host is required")
	}
	if cfg.Policies == nil {
		return nil, errors.New("gate: policies are required")
	}
	if o := cfg.CORSAllowOrigin; !httpguts.ValidHeaderFieldValue(o) || strings.TrimSpace(o) != o {
		return nil, fmt.Errorf("gate: CORS allow origin %q is not a valid header value", o)
	}
	cfg.setDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr := cfg.Transport
	if tr == nil {
		tr = NewTransport()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("gate: registering metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gate{
		cfg: cfg,
		hub: binderHub{
			base:          cfg.Upstream,
			client:        &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			trusted:       cfg.TrustedPeers,
			headerTimeout: cfg.UpstreamHeaderTimeout,
			idleTimeout:   cfg.UpstreamIdleTimeout,
		},
		log:        cfg.Logger,
		m:          m,
		ctx:        ctx,
		cancel:     cancel,
		flights:    make(map[string]*flight),
		builtUntil: make(map[string]time.Time),
		lastGood:   lastGoods{max: cfg.LastGoodSpecs, m: make(map[string]*lastGood)},
		buildTimes: collapse.NewBuildTimes(buildTimesPerKey, buildTimesKeys),
	}
	g.pub.m, g.pub.metricSpecs = m, cfg.MetricSpecs
	g.counts = counts{m: m, dirty: &g.pub.dirty, streams: make(map[string]int)}
	g.breakers = breakers{
		max:  cfg.MaxBreakers,
		idle: cfg.BreakerIdle,
		busy: func(key string) bool { _, ok := g.flights[key]; return ok },
		changed: func(key string, from, to gobreaker.State) {
			m.transitions.WithLabelValues(from.String(), to.String()).Inc()
			g.log.Info("breaker state changed", "key", key, "from", from.String(), "to", to.String())
			g.pub.dirty.Store(true)
		},
		m: make(map[string]*breaker),
	}
	return g, nil
}

// Close ends every held follower's stream, and every leader's whose
// image is not built yet, with a 503 failed event that asks for a retry,
// stops the releasers and waits for them. Call it before shutting down
// the HTTP server: those streams last as long as the build and would
// otherwise keep Shutdown waiting until its deadline and end broken. The
// build goes on in BinderHub, and a retry attaches to it through another
// replica. Launches past built (released followers, passes, leaders
// launching) end within seconds; the server's Shutdown decides how long
// they may.
func (g *Gate) Close() {
	g.cancel()
	g.mu.Lock()
	ev := sse.Failed(503, restartingMessage)
	for _, f := range g.flights {
		f.failLocked(ev)
		if f.stage != collapse.Releasing {
			f.cutLeaderLocked(ev)
			f.endLocked(errAbandoned)
		}
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// DrainPeer ends, with a 503 failed event that asks for a retry, every
// launch that reaches the gate from peer (the address of an Envoy about
// to go away) and would outlive it: held followers, and leaders whose
// image is not built yet; their flights go on under the next follower.
// Launches past built end within seconds and are left to finish. It
// returns how many it ended.
func (g *Gate) DrainPeer(peer string) int {
	ev := sse.Failed(503, restartingMessage)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, f := range g.flights {
		n += f.drainPeerLocked(peer, ev)
		if l := f.leader; l != nil && l.peer == peer && l.cut == nil && f.stage != collapse.Releasing {
			f.cutLeaderLocked(ev)
			n++
		}
	}
	g.pub.dirty.Store(true)
	return n
}

func peerHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

// ServeHTTP answers GET /build/<provider>/<spec>.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeHTTP stays tiny and decides in a separate call: a held
	// follower's goroutine parks under this frame, and with 10,000 of them
	// every byte of stack counts (under 1 KiB in use lets the runtime
	// shrink each stack to 2-4 KiB).
	a := g.decide(w, r)
	if a == nil {
		return
	}
	switch a.d.Role {
	case collapse.Pass:
		g.pass(w, r, a.key, a.learn)
	case collapse.Lead:
		g.lead(w, nil, r, a.f, a.lead, a.providerSpec, false)
	case collapse.Follow:
		g.follow(w, r, a)
	case collapse.Stale:
		g.serveStale(w, r, a)
	}
}

// decide answers what it rejects itself and returns what to do with the
// rest; nil when the request is answered.
//
//go:noinline
func (g *Gate) decide(w http.ResponseWriter, r *http.Request) *plan {
	providerSpec, ok := strings.CutPrefix(r.URL.EscapedPath(), "/build/")
	if !ok || providerSpec == "" {
		http.Error(w, "binderguard gate: only /build/<provider>/<spec> is served here", http.StatusNotFound)
		return nil
	}
	if o := g.cfg.CORSAllowOrigin; o != "" {
		// Set before anything is answered; copyResponseHeaders replaces
		// them with BinderHub's on an answer copied from it.
		h := w.Header()
		h.Set(headerAllowOrigin, o)
		h.Set(headerAllowHeaders, "cache-control")
	}
	if r.Method != http.MethodGet {
		http.Error(w, "binderguard gate: /build takes GET", http.StatusMethodNotAllowed)
		return nil
	}
	providerSpec = strings.TrimRight(providerSpec, "/")
	if len(providerSpec) > MaxSpecBytes {
		g.m.classify(w, "invalid")
		reject(w, 400, fmt.Sprintf("This launch URL is %d bytes long; binderguard accepts at most %d. Please check the repository and ref in it.", len(providerSpec), MaxSpecBytes), 0)
		return nil
	}
	if g.ctx.Err() != nil {
		g.m.classify(w, "reject")
		g.m.shed.WithLabelValues("closing").Inc()
		reject(w, 503, restartingMessage, closingRetryAfter)
		return nil
	}
	now := time.Now()
	pol, err := g.cfg.Policies.Resolve(providerSpec, now)
	if err != nil {
		g.m.classify(w, "invalid")
		reject(w, 400, shown(fmt.Sprintf("binderguard could not read the launch spec %q: %v", providerSpec, err)), 0)
		return nil
	}
	if b := pol.Ban; b != nil {
		if b.Enforce {
			g.m.classify(w, "banned")
			g.m.shed.WithLabelValues("banned").Inc()
			if g.cfg.OnBanned != nil {
				g.cfg.OnBanned(b.Policy)
			}
			reject(w, 403, b.Message, 0)
			return nil
		}
		g.log.Info("launch of banned spec allowed by policy mode", "spec", providerSpec, "policy", b.Policy)
	}
	if pol.Key == "" {
		pol.Key = providerSpec // a Policies that sets no key must not merge every spec into one
	}
	a := g.admit(r, providerSpec, pol, now)
	if a.d.Role != collapse.Stale { // classified once BinderHub shows the image exists
		g.m.classify(w, a.d.Role.String())
	}
	if a.d.Role == collapse.Reject {
		g.m.shed.WithLabelValues(a.d.Reason).Inc()
		msg := shedMessage(a.d, pol.Key)
		if a.d.Reason == "closing" {
			msg = restartingMessage
		}
		reject(w, a.d.StatusCode, msg, a.d.RetryAfter)
		return nil
	}
	return a
}

// The CORS headers BinderHub sets on every /build answer when its
// cors_allow_origin is set.
const (
	headerAllowOrigin  = "Access-Control-Allow-Origin"
	headerAllowHeaders = "Access-Control-Allow-Headers"
)

// ClassHeader names what the gate did with a launch (lead, follow, pass,
// stale, reject, banned, invalid) on its answer, so Envoy's stats access logger
// counts launches by class without a stat per spec.
const ClassHeader = "X-Binderguard-Class"

// plan is what admit decided for one request and what it set up to carry
// the decision out: the flight and the follower or leadership the request
// got in it, or its stale launch.
type plan struct {
	d            collapse.Decision
	key          string
	providerSpec string
	hold         time.Duration // HoldTimeout for a follower
	f            *flight
	fo           *follower
	lead         *leadership
	stale        *staleLaunch // for a Stale launch
	learn        bool         // its policy launches stale: learn the commit its ready resolves to
}

func (g *Gate) admit(r *http.Request, providerSpec string, pol Policy, now time.Time) *plan {
	key := pol.Key
	limits := collapse.Limits{
		Collapse:           pol.Launch.Collapse,
		MaxWaiters:         pol.Launch.MaxWaiters,
		MaxWaitersTotal:    pol.Global.MaxWaitersTotal,
		MaxConcurrent:      pol.Launch.MaxConcurrent,
		MaxConcurrentTotal: pol.Global.MaxConcurrentTotal,
		ShedRetryAfter:     g.cfg.ShedRetryAfter,
		Stale:              pol.Launch.Stale,
	}
	g.mu.Lock()
	g.global = pol.Global
	f := g.flights[key]
	br := g.breakers.get(key, pol.Launch, now)
	br.policy = pol.Name
	sit := collapse.Situation{
		BuiltUntil:   g.builtUntil[key],
		WaitersTotal: g.counts.waiters,
		Streams:      g.counts.streams[key],
		StreamsTotal: g.counts.streamsTotal,
	}
	sit.Breaker, sit.OpenUntil = br.state()
	var lg *lastGood
	if f != nil {
		sit.Stage = f.stage
		sit.Waiters = f.followers.Len()
		if pol.Launch.Stale && !f.stale.Failed {
			lg = g.lastGood.usable(key, providerSpec, pol.Launch.StaleMaxAge, now)
			sit.LastGood = lg != nil
		}
	}
	d := collapse.Admit(sit, limits, now)
	if g.ctx.Err() != nil {
		// Close ran after decide's check: a launch let in now would miss
		// the failed events Close sent and hang until the server's
		// shutdown cut it.
		d = collapse.Decision{Role: collapse.Reject, StatusCode: 503, Reason: "closing", RetryAfter: closingRetryAfter}
	}
	var (
		fo   *follower
		lead *leadership
		sl   *staleLaunch
	)
	switch d.Role {
	case collapse.Lead:
		done, err := br.cb.Allow()
		if err != nil {
			// A half-open breaker's probe is already out.
			d = collapse.Decision{Role: collapse.Reject, StatusCode: 503, Reason: collapse.ReasonBreakerOpen, RetryAfter: time.Second}
			break
		}
		f = g.newFlight(key, pol, done)
		lead = &leadership{peer: peerHost(r.RemoteAddr)}
		f.leader = lead
		g.counts.addStream(key)
	case collapse.Follow:
		fo = f.pushLocked(r, providerSpec)
	case collapse.Pass:
		g.counts.addStream(key)
	case collapse.Stale:
		sl = &staleLaunch{target: lg.target, version: lg.since, started: f.start, turn: collapse.NextStale(f.stale), probe: f.staleProbe, pol: pol}
		if sl.turn == collapse.StaleProbe {
			f.startProbeLocked(sl)
		}
		g.counts.addStream(key)
	}
	if len(br.paths) < maxPaths && !slices.Contains(br.paths, providerSpec) {
		br.paths = append(br.paths, providerSpec)
	}
	if f != nil {
		if len(f.paths) < maxPaths && !slices.Contains(f.paths, providerSpec) {
			f.paths = append(f.paths, providerSpec)
		}
	}
	g.mu.Unlock()
	return &plan{d: d, key: key, providerSpec: providerSpec, hold: pol.Launch.HoldTimeout, f: f, fo: fo, lead: lead, stale: sl, learn: pol.Launch.Stale}
}

// maxPaths bounds the spellings of a key kept for State.
const maxPaths = 8

func (g *Gate) newFlight(key string, pol Policy, done func(error)) *flight {
	f := &flight{
		g:      g,
		key:    key,
		policy: pol.Name,
		launch: pol.Launch,
		stage:  collapse.Starting,
		ring:   newRing(g.cfg.ReplayEvents, g.cfg.ReplayBytes),
		done:   done,
		start:  time.Now(),
	}
	if pol.Launch.MaxBuild > 0 {
		f.buildTime = time.AfterFunc(pol.Launch.MaxBuild, f.buildTooLong)
	}
	g.flights[key] = f
	g.pub.dirty.Store(true)
	return f
}

// streamDone ends the accounting of one upstream launch stream.
func (g *Gate) streamDone(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts.endStream(key)
}

// reject answers with one failed event on a 200 SSE stream.
func reject(w http.ResponseWriter, code int, msg string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	sw := sse.Start(w)
	_ = sw.Write(sse.Failed(code, msg))
}

// restartingMessage is what a launch the gate ends because it (or the
// Envoy in front of it) is going away reads; a held stream's headers are
// sent already, so the wait is in the message as well as in the
// Retry-After of launches refused at the door.
const restartingMessage = "binderguard is restarting. Please try again in 5 seconds."

const closingRetryAfter = 5 * time.Second

// MaxSpecBytes bounds the <provider>/<spec> of a launch URL. BinderHub
// sets none, but its longest real specs (a percent-encoded git clone URL
// and a 255-byte ref) stay far below it, and a bigger one would only be
// echoed back in messages and kept as a key.
const MaxSpecBytes = 2048

// shown caps text that quotes a client's spec.
func shown(s string) string { return spec.Shown(s, 300) }

func shedMessage(d collapse.Decision, key string) string {
	key = shown(key)
	secs := int((d.RetryAfter + time.Second - 1) / time.Second)
	switch d.Reason {
	case collapse.ReasonBreakerOpen:
		return fmt.Sprintf("Recent builds of %s failed or took too long, so binderguard is not starting another one for now. Please try again in %d seconds.", key, secs)
	case collapse.ReasonWaitersSpec:
		return fmt.Sprintf("Too many launches of %s are already waiting for its build. Please try again in %d seconds.", key, secs)
	case collapse.ReasonWaitersTotal:
		return fmt.Sprintf("Too many launches are waiting on this site right now. Please try again in %d seconds.", secs)
	case collapse.ReasonConcurrentSpec:
		return fmt.Sprintf("Too many launches of %s are starting right now. Please try again in %d seconds.", key, secs)
	default:
		return fmt.Sprintf("Too many launches are starting on this site right now. Please try again in %d seconds.", secs)
	}
}
