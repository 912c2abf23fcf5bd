package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/xds/controller"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/server"
)

// The data path both modes run, assembled once: policy snapshots → xDS
// controller → xDS server → Envoy, and requests → gate → BinderHub. The
// modes differ only in where the snapshots come from (a watched directory,
// or informers) and how they run the runnables (goroutines, or a manager).
// This is pure wiring, which is why it stays in cmd: it calls
// constructors in order and lists what must run; the behaviour is in the
// packages it joins.

// dataPathConfig is what a mode gives the data path.
type dataPathConfig struct {
	// store holds the policies; the first edge config is built from what
	// it holds now.
	store     *snapshot.Store
	upstream  *url.URL
	providers *spec.Parser
	// edge is the static part of the edge config (edgeBase).
	edge         ir.Edge
	trustedPeers []netip.Prefix
	// corsOrigin is BinderHub's cors_allow_origin: the gate's and the
	// edge's own answers on /build carry it (empty: none).
	corsOrigin string
	onBanned   func(policy string)
	reg        prometheus.Registerer
	log        *slog.Logger
	// gateLis and xdsLis are bound by the mode, so a busy port fails the
	// start before anything runs.
	gateLis, xdsLis net.Listener
	// gateGrace is how long launches past built get to finish when the
	// gate server stops; peers are the other replicas' gates, asked to
	// drain this pod's launches (zero: none).
	gateGrace time.Duration
	peers     gatePeers
	// gateReady fails while the gate must not take launches (nil: never);
	// its /healthz says so to every Envoy.
	gateReady func() error
	// publishAfter: the controller publishes nothing before each is
	// closed. An Envoy that reconnects to a restarted binderguard replaces
	// what it has with the first config it gets, which must therefore
	// already carry the policies and the gates.
	publishAfter []<-chan struct{}
}

// dataPath is the assembled data path; nothing runs until its runnables do.
type dataPath struct {
	gate *gate.Gate
	xds  *server.Server
	ctl  *controller.Controller
	// gateServed is closed once the gate server has ended (and with it
	// the gate): local stops Envoy only after that.
	gateServed chan struct{}
	runnables  []runnable
}

// runnable is one long-running part of the data path: it runs until ctx
// ends, and an error from it stops the process.
type runnable struct {
	name string
	run  func(ctx context.Context) error
}

// newDataPath builds the gate, the xDS server and the controller fed from
// c.store, with the controller holding the store's current snapshot.
func newDataPath(c dataPathConfig) (*dataPath, error) {
	g, err := gate.New(gate.Config{
		OnBanned:        c.onBanned,
		Upstream:        c.upstream,
		Policies:        gate.SnapshotPolicies(c.store, c.providers),
		Registerer:      c.reg,
		Logger:          c.log.With("component", "gate"),
		TrustedPeers:    c.trustedPeers,
		CORSAllowOrigin: c.corsOrigin,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the launch gate: %w", err)
	}
	d := &dataPath{gate: g, gateServed: make(chan struct{})}
	d.xds = server.New(server.Config{Logger: c.log.With("component", "xds"), Registerer: c.reg})
	c.edge.CORSAllowOrigin = c.corsOrigin
	d.ctl = controller.New(c.edge, d.xds, c.log.With("component", "controller"))
	d.ctl.SetExtraProviders(c.providers.Extra())
	d.ctl.ApplySnapshot(c.store.Load(), time.Now())
	d.runnables = []runnable{
		{"xds server", func(ctx context.Context) error { return d.xds.Serve(ctx, c.xdsLis) }},
		{"gate server", func(ctx context.Context) error {
			defer close(d.gateServed)
			return serveGate(ctx, g, c.gateReady, c.gateLis, c.gateGrace, c.peers, c.log)
		}},
		{"gate", g.Run},
		{"controller", func(ctx context.Context) error {
			for _, ch := range c.publishAfter {
				select {
				case <-ch:
				case <-ctx.Done():
					return nil
				}
			}
			return d.ctl.Run(ctx)
		}},
		{"gate state", func(ctx context.Context) error { controller.WatchGate(ctx, g, d.ctl); return nil }},
		{"policy snapshots", func(ctx context.Context) error { controller.WatchPolicies(ctx, c.store, d.ctl); return nil }},
	}
	return d, nil
}

// edgeBase is the static part of the edge config: where Envoy listens,
// where BinderHub is, and where Envoy finds the gate (gateAt, or, when
// discovered, the endpoints the controller is given as they come).
func edgeBase(listen ir.Endpoint, xffHops uint32, upstream *url.URL, gateAt ir.Endpoint, discovered bool) ir.Edge {
	port, _ := strconv.Atoi(upstream.Port())
	if port == 0 {
		port = 80
		if upstream.Scheme == "https" {
			port = 443
		}
	}
	gate := ir.Gate{Endpoints: []ir.Endpoint{gateAt}}
	if discovered {
		gate = ir.Gate{Discovered: true}
	}
	return ir.Edge{
		Listener: ir.Listener{Address: listen, XFFNumTrustedHops: xffHops},
		Binder:   ir.Upstream{Endpoint: ir.Endpoint{Host: upstream.Hostname(), Port: uint32(port)}, TLS: upstream.Scheme == "https"},
		Gate:     gate,
	}
}
