package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/kube"
	"github.com/binderguard/binderguard/policies/status"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/webhook"
	"github.com/binderguard/binderguard/webhook/existing"
	"github.com/binderguard/binderguard/xds/controller"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/peers"
	"github.com/binderguard/binderguard/xds/server"
)

// runServe runs binderguard in a cluster: policy informers, the launch
// gate, the xDS server for the Envoy sidecar, the admission webhooks,
// metrics and health, with leader election for status writes.
func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseServe(args, stdout, os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger(os.Stderr, c.logLevel)
	// controller-runtime's packages log through its global logger too.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	rc, err := ctrlconfig.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the Kubernetes API (in-cluster config or KUBECONFIG): %w", err)
	}
	s, err := newInCluster(rc, c, log)
	if err != nil {
		return err
	}
	hook := "off"
	if c.webhook {
		hook = fmt.Sprintf(":%d (%s certificate)", c.webhookPort, c.certMode)
	}
	fmt.Fprintf(stdout, "binderguard serve: gate %s, xDS %s, metrics http://%s/metrics, health http://%s/readyz, webhook %s, upstream %s, namespace %q\n",
		s.gateLis.Addr(), s.xdsLis.Addr(), s.metricsLis.Addr(), s.healthLis.Addr(), hook, c.upstream, c.namespace)
	return s.run(ctx)
}

// inCluster is `binderguard serve` assembled: listeners bound, every
// component added to the manager, nothing running until run.
type inCluster struct {
	cfg   serveConfig
	log   *slog.Logger
	mgr   manager.Manager
	store *snapshot.Store
	reg   *prometheus.Registry
	gate  *gate.Gate
	xds   *server.Server
	ctl   *controller.Controller
	// peers are every replica's gate (see gatePeers).
	peers gatePeers

	gateLis, xdsLis, metricsLis, healthLis net.Listener
	metricsSrv, healthSrv                  *http.Server
}

// newInCluster builds everything against the API server rc reaches. On
// error every listener it bound is closed.
func newInCluster(rc *rest.Config, c serveConfig, log *slog.Logger) (_ *inCluster, err error) {
	s := &inCluster{cfg: c, log: log, store: snapshot.NewStore(snapshot.Empty())}
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	// Bind first, so a busy port fails the start instead of a runnable.
	for _, l := range []struct {
		name, addr string
		into       *net.Listener
	}{{"gate", c.gateAddr, &s.gateLis}, {"xDS", c.xdsAddr, &s.xdsLis}, {"metrics", c.metricsAddr, &s.metricsLis}, {"health", c.healthAddr, &s.healthLis}} {
		if *l.into, err = net.Listen("tcp", l.addr); err != nil {
			return nil, fmt.Errorf("listening for %s on %s: %w", l.name, l.addr, err)
		}
	}

	if c.gateEndpoint == (ir.Endpoint{}) {
		s.cfg.gateEndpoint = ir.Endpoint{Host: "127.0.0.1", Port: uint32(s.gateLis.Addr().(*net.TCPAddr).Port)}
	}

	// binderguard's own metrics; Go runtime and process metrics come from
	// controller-runtime's registry, served beside it (metricsHandler).
	reg := prometheus.NewRegistry()
	s.reg = reg
	if s.mgr, err = newManager(rc, c, log); err != nil {
		return nil, err
	}
	readyz := map[string]healthz.Checker{}

	// Policies: informers -> snapshot store on every replica; Accepted
	// conditions written by the leader.
	writer, err := status.NewWriter(status.Config{Client: s.mgr.GetClient(), Logger: log.With("component", "status")})
	if err != nil {
		return nil, err
	}
	relay := status.NewRelay(writer, log.With("component", "status"))
	src, err := kube.New(kube.Config{
		Cache:     s.mgr.GetCache(),
		Store:     s.store,
		OnRebuild: relay.Offer,
		Logger:    log.With("component", "policies"),
	})
	if err != nil {
		return nil, err
	}
	counters, err := live.NewWriter(s.mgr.GetClient(), log.With("component", "live-status"), nil)
	if err != nil {
		return nil, err
	}
	readyz["policies"] = func(*http.Request) error {
		select {
		case <-src.Ready():
			return nil
		default:
			return errors.New("policies not loaded yet")
		}
	}

	// What each RepoBan blocked and refused on this replica, added to its
	// status by this replica (see reportBans).
	tally := &live.Tally{}

	gates := findGates(c, func(eps []ir.Endpoint) { s.ctl.SetGateEndpoints(eps) })
	s.peers = gates.peers
	if gates.check != nil {
		readyz["gate-peers"] = gates.check
	}

	// The data path: the launch gate and the control plane for this pod's
	// Envoy.
	d, err := newDataPath(dataPathConfig{
		store:        s.store,
		upstream:     c.upstream,
		providers:    c.providers,
		edge:         edgeBase(s.cfg.envoyListen, s.cfg.xffHops, s.cfg.upstream, s.cfg.gateEndpoint, s.cfg.gateService != ""),
		trustedPeers: c.trustedPeers,
		corsOrigin:   c.corsOrigin,
		onBanned:     tally.Blocked,
		reg:          reg,
		log:          log,
		gateLis:      s.gateLis,
		xdsLis:       s.xdsLis,
		gateGrace:    5 * time.Second,
		peers:        s.peers,
		gateReady:    func() error { return readyz["policies"](nil) },
		publishAfter: []<-chan struct{}{src.Ready(), gates.known},
	})
	if err != nil {
		return nil, err
	}
	s.gate, s.xds, s.ctl = d.gate, d.xds, d.ctl
	readyz["xds"] = func(*http.Request) error {
		if s.xds.Version(resource.ListenerType) == "" {
			return errors.New("no edge config published yet")
		}
		return nil
	}

	// Admission webhooks (and the existing-pods controller, leader only).
	// With --webhook=false the existing-pods controller still runs:
	// onExisting needs no webhook.
	if c.webhook {
		checks, err := webhook.Setup(s.mgr, webhook.Config{
			Store:        s.store,
			Host:         c.webhookHost,
			Port:         c.webhookPort,
			CertDir:      c.certDir,
			CertMode:     c.certMode,
			Namespace:    c.installNamespace,
			Registerer:   reg,
			Logger:       log.With("component", "webhook"),
			ExistingPods: c.existingPods,
			PodNamespace: c.namespace, // binder pods live beside the policies
			OnRefused:    tally.Refused,
			Parser:       c.providers,
		})
		if err != nil {
			return nil, fmt.Errorf("setting up the admission webhooks: %w", err)
		}
		maps.Copy(readyz, checks)
	} else if c.existingPods {
		if err := existing.Setup(s.mgr, c.namespace, c.providers, log.With("component", "existing-pods")); err != nil {
			return nil, fmt.Errorf("setting up the existing-pods controller: %w", err)
		}
	}

	s.metricsSrv = &http.Server{Handler: metricsHandler(reg), ReadHeaderTimeout: 5 * time.Second}
	s.healthSrv = &http.Server{Handler: healthHandler(map[string]healthz.Checker{"ping": healthz.Ping}, readyz), ReadHeaderTimeout: 5 * time.Second}

	runnables := []manager.Runnable{everyReplica(src.Run)}
	if gates.set != nil {
		runnables = append(runnables, everyReplica(func(ctx context.Context) error {
			return peers.Watch(ctx, peers.Config{
				Cache: s.mgr.GetCache(), Namespace: c.installNamespace, Service: c.gateService, Port: peers.PortName,
				Logger: log.With("component", "gate-peers"),
			}, gates.set)
		}))
	}
	for _, r := range d.runnables {
		runnables = append(runnables, everyReplica(r.run))
	}
	for _, r := range append(runnables,
		everyReplica(func(ctx context.Context) error { return serveHTTP(ctx, s.metricsSrv, s.metricsLis, time.Second, nil) }),
		everyReplica(func(ctx context.Context) error { return serveHTTP(ctx, s.healthSrv, s.healthLis, time.Second, nil) }),
		relay,
		manager.RunnableFunc(func(ctx context.Context) error {
			return s.reportLive(ctx, counters, log.With("component", "live-status"))
		}),
		everyReplica(func(ctx context.Context) error {
			return s.reportBans(ctx, tally, log.With("component", "ban-counters"))
		}),
	) {
		if err := s.mgr.Add(r); err != nil {
			return nil, fmt.Errorf("adding a component to the manager: %w", err)
		}
	}
	return s, nil
}

// run serves until ctx ends or a component fails.
func (s *inCluster) run(ctx context.Context) error {
	defer s.gate.Close() // serveGate closes it first; this covers a start that failed early
	if err := s.mgr.Start(ctx); err != nil {
		return fmt.Errorf("running: %w", err)
	}
	return nil
}

func (s *inCluster) closeListeners() {
	for _, l := range []net.Listener{s.gateLis, s.xdsLis, s.metricsLis, s.healthLis} {
		if l != nil {
			l.Close()
		}
	}
}

// metricsHandler serves binderguard's registry together with the one
// controller-runtime registers its own metrics in (Go runtime and process,
// client-go requests, leader election, workqueues, webhook latency), which
// it offers only as a package variable.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{reg, crmetrics.Registry}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// healthHandler serves /healthz and /readyz (and /readyz/<check>) like
// controller-runtime's probe server. Checks are fixed once serving starts.
func healthHandler(live, ready map[string]healthz.Checker) http.Handler {
	mux := http.NewServeMux()
	for path, checks := range map[string]map[string]healthz.Checker{"/healthz": live, "/readyz": ready} {
		hh := http.StripPrefix(path, &healthz.Handler{Checks: checks})
		mux.Handle(path, hh)
		mux.Handle(path+"/", hh)
	}
	return mux
}
