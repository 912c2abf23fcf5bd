package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	xdslog "github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// snapshotKey is the single node hash every Envoy maps to.
const snapshotKey = "edge"

// ErrInconsistent is returned by Set for a snapshot the cache would refuse
// or a resource without a version.
var ErrInconsistent = errors.New("snapshot is inconsistent")

// Config configures a Server.
type Config struct {
	Logger *slog.Logger
	// Registerer receives the xDS metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Server publishes snapshots and serves them over ADS.
type Server struct {
	log     *slog.Logger
	cache   cachev3.SnapshotCache // everything but ECDS, consistent as a whole (ADS)
	ecds    cachev3.SnapshotCache // the ban dispatcher and shards (see splitECDS)
	mux     *cachev3.MuxCache
	metrics *metrics

	mu       sync.Mutex
	versions map[resource.Type]string // last published, per type
	acked    map[resource.Type]string // last version any Envoy ACKed, per type
	nacks    uint64
	ackCh    chan struct{} // closed and replaced on every ACK
	// delta streams answer with a nonce; remember which version it carried.
	deltaNonces map[string]string
}

// New makes a Server with an empty cache. A metric that cannot be
// registered (a name clash on o.Registerer) is logged, not fatal: xDS
// works without it.
func New(o Config) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		o.Logger.Error("xds metrics not registered", "err", err)
	}
	s := &Server{
		log:         o.Logger,
		metrics:     m,
		versions:    map[resource.Type]string{},
		acked:       map[resource.Type]string{},
		ackCh:       make(chan struct{}),
		deltaNonces: map[string]string{},
	}
	s.cache = cachev3.NewSnapshotCache(true, constHash{}, cacheLogger(o.Logger))
	s.ecds = cachev3.NewSnapshotCache(false, constHash{}, cacheLogger(o.Logger))
	s.mux = ecdsMux(s.cache, s.ecds)
	return s
}

// constHash maps every node to the one shared snapshot.
type constHash struct{}

func (constHash) ID(*corev3.Node) string { return snapshotKey }

// Set publishes res under the given content versions, one per type
// (equal content, equal version), and reports whether anything changed:
// a set with the versions last published publishes nothing. On error the
// previous snapshot stays in force.
//
// The server neither validates nor hashes: the translator validates every
// resource it builds and keeps content versions itself
// (translate.Incremental), and doing either again here would cost as much
// as the whole edit. perResource, when not nil, gives every resource's own
// version by type and name, for delta xDS: the cache would otherwise
// marshal and hash every resource on each publish to find what changed.
func (s *Server) Set(ctx context.Context, res map[resource.Type][]types.Resource, versions map[resource.Type]string, perResource map[resource.Type]map[string]string) (bool, error) {
	snap := &cachev3.Snapshot{}
	if perResource != nil {
		for typ, items := range res {
			for _, r := range items {
				if perResource[typ][cachev3.GetResourceName(r)] == "" {
					return false, fmt.Errorf("%w: no version for %s %q", ErrInconsistent, typ, cachev3.GetResourceName(r))
				}
			}
		}
		snap.VersionMap = perResource
	}
	for typ, items := range res {
		v, ok := versions[typ]
		if !ok || v == "" {
			return false, fmt.Errorf("%w: no version for %s", ErrInconsistent, typ)
		}
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(v, items)
	}
	return s.publish(ctx, snap, maps.Clone(versions), res)
}

func (s *Server) publish(ctx context.Context, snap *cachev3.Snapshot, versions map[resource.Type]string, res map[resource.Type][]types.Resource) (bool, error) {
	if err := snap.Consistent(); err != nil {
		s.metrics.invalid.Inc()
		return false, fmt.Errorf("%w: %w", ErrInconsistent, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if maps.Equal(versions, s.versions) {
		s.metrics.unchanged.Inc()
		return false, nil
	}
	main, ext := splitECDS(snap)
	// Extension configs first: a listener or dispatcher that names a
	// new one finds it there when Envoy asks.
	if err := s.ecds.SetSnapshot(ctx, snapshotKey, ext); err != nil {
		return false, fmt.Errorf("setting extension config snapshot: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, snapshotKey, main); err != nil {
		return false, fmt.Errorf("setting snapshot: %w", err)
	}
	for typ, v := range versions {
		if s.versions[typ] != v {
			s.log.Info("pushing resources", "type", shortType(typ), "version", v, "count", len(res[typ]))
		}
	}
	s.versions = versions
	s.metrics.pushes.Inc()
	return true, nil
}

// Version returns the version last published for typ ("" before any).
func (s *Server) Version(typ resource.Type) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[typ]
}

// Acked returns the version of typ last ACKed by an Envoy.
func (s *Server) Acked(typ resource.Type) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked[typ]
}

// NACKs returns how many NACKs Envoys have sent.
func (s *Server) NACKs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nacks
}

// WaitAcked blocks until an Envoy has ACKed version of typ, or ctx ends.
func (s *Server) WaitAcked(ctx context.Context, typ resource.Type, version string) error {
	for {
		s.mu.Lock()
		got, ch := s.acked[typ], s.ackCh
		s.mu.Unlock()
		if got == version {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s version %s to be acked (have %q): %w", shortType(typ), version, got, ctx.Err())
		}
	}
}

// Serve runs the ADS gRPC server on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1<<20),
		// Envoy keeps one ADS stream open for its lifetime; keepalives find
		// a dead peer within about a minute.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	xds := serverv3.NewServer(ctx, s.mux, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, xds)

	// The stopper ends with ctx or, should Serve fail by itself, with Serve.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-stopCtx.Done()
		// Envoy's ADS stream never ends by itself: give it a moment, then cut.
		t := time.AfterFunc(2*time.Second, g.Stop)
		g.GracefulStop()
		t.Stop()
	}()
	s.log.Info("xds server listening", "addr", lis.Addr().String())
	err := g.Serve(lis)
	stop()
	<-stopped
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serving xds on %s: %w", lis.Addr(), err)
	}
	return nil
}

// shortType is the last part of a type URL, for logs.
func shortType(t string) string { return t[strings.LastIndexByte(t, '.')+1:] }

func cacheLogger(l *slog.Logger) xdslog.Logger {
	l = l.With("component", "xds-cache")
	return xdslog.LoggerFuncs{
		DebugFunc: func(f string, a ...any) { l.Debug(fmt.Sprintf(f, a...)) },
		InfoFunc:  func(f string, a ...any) { l.Debug(fmt.Sprintf(f, a...)) },
		WarnFunc:  func(f string, a ...any) { l.Warn(fmt.Sprintf(f, a...)) },
		ErrorFunc: func(f string, a ...any) { l.Error(fmt.Sprintf(f, a...)) },
	}
}
