package fakebinder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Version is what /versions reports as the BinderHub version.
const Version = "fakebinder-0.1.0"

// Server is one simulated BinderHub. It is safe for concurrent use.
type Server struct {
	cfg compiled
	log *slog.Logger

	// ctx lives until Close; build goroutines and streams end with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reg     *prometheus.Registry
	metrics *metrics
	pool    *pool
	limiter *rateLimiter // nil when RateLimit is 0

	mu         sync.Mutex
	built      map[string]bool          // images in the registry, by name
	builds     map[string]*buildPod     // build pods that exist, by image name
	refs       map[refKey]string        // refs moved by SetRef, to their commit
	buildTimes map[string]time.Duration // by image name, from SetRef
	stats      Stats
	fault      *compiledFault // a test's injected misbehaviour; nil: none
}

// New validates cfg and returns a Server. Call Close when done.
func New(cfg Config) (*Server, error) {
	c, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registering fakebinder metrics: %w", err)
	}
	s := &Server{
		cfg:        c,
		log:        c.Logger,
		ctx:        ctx,
		cancel:     cancel,
		reg:        reg,
		metrics:    m,
		pool:       newPool(c.Pool),
		built:      map[string]bool{},
		builds:     map[string]*buildPod{},
		refs:       map[refKey]string{},
		buildTimes: map[string]time.Duration{},
	}
	if c.RateLimit > 0 {
		s.limiter = newRateLimiter(c.RateLimit, c.RateLimitPeriod, time.Now())
	}
	s.stats.Pool = int64(c.Pool)
	s.stats.LoadFactor = 1
	s.stats.PeakLoadFactor = 1
	return s, nil
}

// Registry returns the registry /metrics serves, for tests that gather it.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handler returns the HTTP handler of the simulator: /build/, /health,
// /versions, /metrics and the /_sim/ test endpoints (GET /_sim/stats,
// POST /_sim/reset, POST /_sim/refs to move a ref: see SetRef, and
// POST /_sim/fault, which injects a misbehaviour BinderHub does not have). Streams it serves end
// with their request or with Close; when serving it on your own
// http.Server (or httptest.Server), call Close first so held streams (the
// 60 s ready hold) do not keep that server's shutdown waiting.
func (s *Server) Handler() http.Handler {
	metricsHandler := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
	// A hand-written dispatch rather than http.ServeMux: the mux cleans
	// paths ("//" and "%2F" forms) with redirects, and BinderHub takes the
	// spec from the raw path as received.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, "/build/"):
			if r.Method != http.MethodGet {
				serveBuildNotGet(w, r)
				return
			}
			s.serveBuild(w, r)
		case path == "/health":
			if getOnly(w, r) {
				s.serveHealth(w)
			}
		case path == "/versions":
			if getOnly(w, r) {
				s.serveVersions(w)
			}
		case path == "/metrics":
			metricsHandler.ServeHTTP(w, r)
		case path == "/_sim/stats":
			if getOnly(w, r) {
				writeJSON(w, s.Stats())
			}
		case path == "/_sim/fault":
			s.serveFault(w, r)
		case path == "/_sim/reset":
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			s.Reset()
			writeJSON(w, s.Stats())
		case path == "/_sim/refs":
			s.serveRefs(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// serveHealth answers like BinderHub's HealthHandler: the checks it runs
// against the hub, the registry and the build pods all pass here.
func (s *Server) serveHealth(w http.ResponseWriter) {
	writeJSON(w, map[string]any{
		"ok": true,
		"checks": []map[string]any{
			{"service": "Hub", "ok": true},
			{"service": "Pod quota", "ok": true},
		},
	})
}

// serveVersions answers like BinderHub's VersionHandler, which the
// federation redirector compares across members.
func (s *Server) serveVersions(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, map[string]any{
		"builder_info": map[string]string{"build_image": "fakebinder/repo2docker:simulated"},
		"binderhub":    Version,
		"builder":      "fakebinder/repo2docker:simulated",
	})
}

// Stats returns a snapshot of the simulator's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Queued = int64(s.pool.queued())
	st.PeakQueued = int64(s.pool.peakQueued())
	st.PoolSlotsInUse = int64(s.pool.inUse())
	st.LoadFactor = s.loadFactorLocked()
	st.BuiltImages = int64(len(s.built))
	return st
}

// Reset zeroes the counters and forgets built images, moved refs and
// rate-limit windows, for tests that reuse
// one Server. Builds and streams in flight go on; the gauges (active
// streams, watchers, queue) keep counting them. Prometheus metrics are not
// reset: they are monotonic by contract.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.built)
	clear(s.refs)
	clear(s.buildTimes)
	keep := s.stats
	s.stats = Stats{
		Pool:                keep.Pool,
		ActiveStreams:       keep.ActiveStreams,
		ActiveBuildWatchers: keep.ActiveBuildWatchers,
		PeakBuildWatchers:   keep.ActiveBuildWatchers,
		BuildsInProgress:    keep.BuildsInProgress,
		PodWatches:          keep.PodWatches,
		PeakPodWatches:      keep.PodWatches,
		LogStreams:          keep.LogStreams,
		PeakLogStreams:      keep.LogStreams,
		LaunchesInProgress:  keep.LaunchesInProgress,
	}
	s.stats.PeakLoadFactor = s.loadFactorLocked()
	s.pool.resetPeak()
	if s.limiter != nil {
		clear(s.limiter.windows)
	}
}

// Serve serves the simulator on ln until ctx ends or Close is called, then
// shuts the HTTP server down, giving open streams a second to end. It
// returns nil after a shutdown it was asked for.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving fakebinder on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	// Streams watch s.ctx (the BaseContext); cancelling it ends them so
	// Shutdown does not wait for a 60 s ready hold.
	s.cancel()
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := hs.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serving fakebinder on %s: %w", ln.Addr(), serr)
	}
	if err != nil {
		return fmt.Errorf("shutting fakebinder down: %w", err)
	}
	return nil
}

// Close ends every build and stream and waits for the build goroutines.
// Streams served by Handler on someone else's http.Server end too, since
// they watch the Server's context as well as the request's.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}
