package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/kube"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/policies/status"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/webhook"
	"github.com/binderguard/binderguard/webhook/certs"
	"github.com/binderguard/binderguard/webhook/existing"
	"github.com/binderguard/binderguard/xds/controller"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/server"
)

// leaseName is the leader-election Lease in the pod's namespace. Only the
// leader writes policy status and acts on running pods of a new ban; every
// replica serves the gate, xDS and the webhooks.
const leaseName = "binderguard-leader"

// serveConfig is what `binderguard serve` was asked to run.
type serveConfig struct {
	upstream *url.URL
	// Listen addresses; port 0 picks a free port (tests).
	gateAddr, xdsAddr, metricsAddr, healthAddr string
	// envoyListen is where Envoy serves BinderHub (programmed over xDS);
	// gateEndpoint is how Envoy reaches the gates (a headless Service name
	// resolves to every replica; zero: this replica's gate on loopback).
	envoyListen, gateEndpoint ir.Endpoint
	xffHops                   uint32
	trustedPeers              []netip.Prefix
	// webhook: serve the admission webhooks (off: no webhook server and
	// no certificate; onExisting still acts on running pods).
	webhook     bool
	webhookHost string
	webhookPort int
	certDir     string
	certMode    certs.Mode
	// installNamespace is the pod's (else --namespace): the certificate
	// Secret, the webhook Service and the webhook configurations'
	// binderguard-<namespace> name.
	installNamespace string
	// namespace to watch for policies ("" = all); leaseNamespace holds
	// the leader Lease.
	namespace, leaseNamespace string
	leaderElect               bool
	existingPods              bool
	logLevel                  slog.Level
	// providers knows the site's extra provider prefixes.
	providers *spec.Parser
	// liveInterval spaces the reports of live counters into LaunchPolicy
	// and RepoBan status (liveStatusInterval; shorter in tests).
	liveInterval time.Duration
}

// liveStatusInterval is how often the elected replica gathers every
// gate's held launches and writes the counters that changed into
// LaunchPolicy status, and how often each replica adds what RepoBans
// blocked and refused on it to their status. Each report is one GET per replica and at most one
// status write per LaunchPolicy, and a storm changes the count on nearly
// every report, so this is also the most often one object is written:
// fresh enough to watch a storm with `kubectl get launchpolicies -w`,
// rare enough that a storm does not become a load on the API server.
const liveStatusInterval = 5 * time.Second

// parseServe reads the flags; getenv supplies POD_NAMESPACE (the downward
// API), the default namespace to watch and to hold the Lease in.
func parseServe(args []string, stdout io.Writer, getenv func(string) string) (serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	podNS := getenv("POD_NAMESPACE")
	upstream := fs.String("upstream", "", "BinderHub Service URL, e.g. http://binder.<namespace>.svc (required)")
	gateAddr := fs.String("gate-addr", ":8081", "launch gate listen address (Envoy reaches it over h2c)")
	gateEndpoint := fs.String("gate-endpoint", "", "host:port Envoy dials for the gate; a headless Service name spreads launches over all replicas (default: this replica's gate on 127.0.0.1)")
	xdsAddr := fs.String("xds-addr", "127.0.0.1:18000", "xDS (ADS) server listen address; only the Envoy sidecar connects, over loopback")
	envoyListen := fs.String("envoy-listen", "0.0.0.0:8080", "address Envoy's listener serves BinderHub on (programmed over xDS)")
	xffHops := fs.Uint("xff-trusted-hops", 1, "proxies in front of Envoy (the ingress controller) whose X-Forwarded-For entry names the client")
	trusted := fs.String("gate-trusted-peers", "", "comma-separated CIDRs allowed to set X-Real-Ip at the gate (default: every peer; restrict the gate port with a NetworkPolicy)")
	metricsAddr := fs.String("metrics-addr", ":8082", "Prometheus /metrics listen address")
	healthAddr := fs.String("health-addr", ":8083", "/healthz and /readyz listen address")
	webhookOn := fs.Bool("webhook", true, "serve the pod admission webhooks (false: bans are enforced at the edge only, and no certificate is kept)")
	webhookPort := fs.Int("webhook-port", 9443, "admission webhook HTTPS port")
	certDir := fs.String("cert-dir", "", "directory with the webhook's tls.crt and tls.key, reloaded when rotated (default: controller-runtime's temporary dir)")
	certMode := fs.String("webhook-cert-mode", certs.SelfSigned.String(), "who keeps the webhook's certificate: self-signed (binderguard writes the Secret "+certs.SecretName+" mounted at --cert-dir and the CA of the webhook configurations binderguard-<namespace>) or external (cert-manager or you)")
	namespace := fs.String("namespace", podNS, "namespace to watch for RepoBans and LaunchPolicies; empty watches all (default: $POD_NAMESPACE)")
	leaderElect := fs.Bool("leader-elect", true, "elect one replica to write policy status and act on running pods (Lease in $POD_NAMESPACE)")
	existing := fs.Bool("existing-pods", true, "act on running pods of a newly banned repository (RepoBan onExisting: Report/Delete)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	extra := fs.String("extra-providers", "", extraProvidersUsage)
	if err := parseFlags(fs, args, stdout, nil); err != nil {
		return serveConfig{}, err
	}
	c := serveConfig{
		gateAddr: *gateAddr, xdsAddr: *xdsAddr, metricsAddr: *metricsAddr, healthAddr: *healthAddr,
		webhook: *webhookOn, webhookPort: *webhookPort, certDir: *certDir, namespace: *namespace,
		leaderElect: *leaderElect, existingPods: *existing, liveInterval: liveStatusInterval,
	}
	if *upstream == "" {
		return c, usageErr("--upstream is required (BinderHub's Service URL, e.g. http://binder.<namespace>.svc)")
	}
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return c, usageErr("--upstream %q: want an http or https URL with a host and no path", *upstream)
	}
	c.upstream = u
	if c.providers, err = parseExtraProviders(*extra); err != nil {
		return c, err
	}
	for _, a := range []struct{ name, val string }{
		{"gate-addr", c.gateAddr}, {"xds-addr", c.xdsAddr}, {"metrics-addr", c.metricsAddr}, {"health-addr", c.healthAddr},
	} {
		if _, err := parseListenPort(a.val); err != nil {
			return c, usageErr("--%s: %v", a.name, err)
		}
	}
	if c.envoyListen, err = ir.ParseEndpoint(*envoyListen, ""); err != nil {
		return c, usageErr("--envoy-listen: %v", err)
	}
	// Empty: this replica's own gate, dialled on loopback once its port is
	// known (see newInCluster).
	if *gateEndpoint != "" {
		if c.gateEndpoint, err = ir.ParseEndpoint(*gateEndpoint, ""); err != nil {
			return c, usageErr("--gate-endpoint: %v", err)
		}
	}
	if *xffHops > 16 {
		return c, usageErr("--xff-trusted-hops %d: want 0-16", *xffHops)
	}
	c.xffHops = uint32(*xffHops)
	for s := range strings.SplitSeq(*trusted, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, usageErr("--gate-trusted-peers: %v", err)
		}
		c.trustedPeers = append(c.trustedPeers, p)
	}
	if c.webhookPort < 1 || c.webhookPort > 65535 {
		return c, usageErr("--webhook-port %d: want 1-65535", c.webhookPort)
	}
	if c.certDir != "" {
		if st, err := os.Stat(c.certDir); err != nil || !st.IsDir() {
			return c, usageErr("--cert-dir %q is not a directory", c.certDir)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, usageErr("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	// The Lease lives with the pod; out of a cluster, with the policies.
	c.leaseNamespace = podNS
	if c.leaseNamespace == "" {
		c.leaseNamespace = c.namespace
	}
	c.installNamespace = c.leaseNamespace
	if c.certMode, err = certs.ParseMode(*certMode); err != nil {
		return c, usageErr("--webhook-cert-mode: %v", err)
	}
	if c.webhook && c.certMode == certs.SelfSigned && (c.installNamespace == "" || c.certDir == "") {
		return c, usageErr("--webhook-cert-mode=self-signed needs --cert-dir (where the Secret %s is mounted) and the install's namespace (POD_NAMESPACE or --namespace)", certs.SecretName)
	}
	if c.leaderElect && c.leaseNamespace == "" {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err != nil {
			return c, usageErr("--leader-elect needs a namespace for its Lease: set POD_NAMESPACE or --namespace")
		}
	}
	return c, nil
}

// parseListenPort checks a listen address and returns its port (0 allowed).
func parseListenPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("address %q: port must be 0-65535", addr)
	}
	return int(port), nil
}

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

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	// binderguard's own metrics; Go runtime and process metrics come from
	// controller-runtime's registry, served beside it (metricsHandler).
	reg := prometheus.NewRegistry()
	s.reg = reg

	opts := manager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(log.With("component", "manager").Handler()),
		// binderguard serves metrics and health itself, on listeners it
		// binds (one registry; see metricsHandler).
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                c.leaderElect,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       c.leaseNamespace,
		LeaderElectionReleaseOnCancel: true, // runServe returns right after the manager stops
		GracefulShutdownTimeout:       new(10 * time.Second),
		// controller-runtime checks controller names process-wide; serve
		// builds one manager per process, so the check could only refuse
		// a second in-process run (go test -count=N).
		Controller: config.Controller{SkipNameValidation: new(true)},
	}
	if c.namespace != "" {
		// A namespaced Role can only list and watch its own namespace.
		opts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{c.namespace: {}}}
	}
	if s.mgr, err = manager.New(rc, opts); err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	health := &healthChecks{Manager: s.mgr, healthz: map[string]healthz.Checker{"ping": healthz.Ping}, readyz: map[string]healthz.Checker{}}

	// Policies: informers -> snapshot store on every replica; Accepted
	// conditions written by the leader.
	relay := newStatusRelay()
	src, err := kube.New(kube.Config{
		Cache:   s.mgr.GetCache(),
		Store:   s.store,
		OnBuild: relay.offer,
		Logger:  log.With("component", "policies"),
	})
	if err != nil {
		return nil, err
	}
	writer, err := status.NewWriter(status.Config{Client: s.mgr.GetClient(), Logger: log.With("component", "status")})
	if err != nil {
		return nil, err
	}
	counters, err := live.NewWriter(s.mgr.GetClient(), log.With("component", "live-status"), nil)
	if err != nil {
		return nil, err
	}
	health.readyz["policies"] = func(*http.Request) error {
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

	// The launch gate.
	if s.gate, err = gate.New(gate.Config{
		OnBanned:     tally.Blocked,
		Upstream:     c.upstream,
		Policies:     gate.SnapshotPolicies(s.store, c.providers),
		Registerer:   reg,
		Logger:       log.With("component", "gate"),
		TrustedPeers: c.trustedPeers,
	}); err != nil {
		return nil, fmt.Errorf("creating the launch gate: %w", err)
	}

	// The control plane for this pod's Envoy.
	s.xds = server.New(server.Options{Logger: log.With("component", "xds"), Registerer: reg})
	s.ctl = controller.New(edgeBase(s.cfg.envoyListen, s.cfg.xffHops, s.cfg.upstream, s.cfg.gateEndpoint), s.xds, log.With("component", "controller"))
	s.ctl.SetExtraProviders(c.providers.Extra())
	s.ctl.ApplySnapshot(s.store.Load(), time.Now())
	health.readyz["xds"] = func(*http.Request) error {
		if s.xds.Version(resource.ListenerType) == "" {
			return errors.New("no edge config published yet")
		}
		return nil
	}

	// Admission webhooks (and the existing-pods controller, leader only).
	// With --webhook=false the existing-pods controller still runs:
	// onExisting needs no webhook.
	if c.webhook {
		if err := webhook.Setup(health, webhook.Config{
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
		}); err != nil {
			return nil, fmt.Errorf("setting up the admission webhooks: %w", err)
		}
	} else if c.existingPods {
		if err := existing.Setup(health, c.namespace, c.providers, log.With("component", "existing-pods")); err != nil {
			return nil, fmt.Errorf("setting up the existing-pods controller: %w", err)
		}
	}

	s.metricsSrv = &http.Server{Handler: metricsHandler(reg), ReadHeaderTimeout: 5 * time.Second}
	s.healthSrv = &http.Server{Handler: health.handler(), ReadHeaderTimeout: 5 * time.Second}

	for _, r := range []manager.Runnable{
		everyReplica(src.Run),
		everyReplica(func(ctx context.Context) error { return s.xds.Serve(ctx, s.xdsLis) }),
		everyReplica(s.ctl.Run),
		everyReplica(func(ctx context.Context) error { controller.WatchPolicies(ctx, s.store, s.ctl); return nil }),
		everyReplica(func(ctx context.Context) error { controller.WatchGate(ctx, s.gate, s.ctl); return nil }),
		everyReplica(s.gate.Run),
		everyReplica(func(ctx context.Context) error {
			return serveGate(ctx, s.gate, s.gateLis, 5*time.Second, s.cfg.gateEndpoint, log)
		}),
		everyReplica(func(ctx context.Context) error { return serveHTTP(ctx, s.metricsSrv, s.metricsLis, time.Second, nil) }),
		everyReplica(func(ctx context.Context) error { return serveHTTP(ctx, s.healthSrv, s.healthLis, time.Second, nil) }),
		manager.RunnableFunc(func(ctx context.Context) error { return relay.run(ctx, writer, log.With("component", "status")) }),
		manager.RunnableFunc(func(ctx context.Context) error {
			return s.reportLive(ctx, counters, log.With("component", "live-status"))
		}),
		everyReplica(func(ctx context.Context) error {
			return s.reportBans(ctx, tally, log.With("component", "ban-counters"))
		}),
	} {
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

// reportLive runs on the elected replica until ctx ends: every
// liveInterval it sums the held launches of every replica's gate and
// writes the LaunchPolicy counters that changed. A round that cannot read
// every gate, or list the policies, writes nothing (the status keeps its
// last, timestamped report) and is retried at the next tick.
func (s *inCluster) reportLive(ctx context.Context, w *live.Writer, log *slog.Logger) error {
	tick := time.NewTicker(s.cfg.liveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		loads, err := gatherLoads(ctx, s.gate, s.cfg.gateEndpoint, net.DefaultResolver.LookupHost)
		if err != nil {
			log.Warn("gathering the gates' held launches", "err", err)
			continue
		}
		var lps v1alpha1.LaunchPolicyList
		if err := s.mgr.GetClient().List(ctx, &lps, client.InNamespace(s.cfg.namespace)); err != nil {
			log.Warn("listing LaunchPolicies", "err", err)
			continue
		}
		if n, err := w.Write(ctx, lps.Items, loads); err != nil && ctx.Err() == nil {
			log.Warn("writing live counters", "err", err, "written", n)
		}
	}
}

// reportBans runs on every replica until ctx ends: every liveInterval it
// adds what RepoBans blocked and refused here since the last report to
// their status (one write per ban with new counts: bounded by the
// interval however busy a ban is), and once more as it stops, so a
// rollout loses no counts.
func (s *inCluster) reportBans(ctx context.Context, t *live.Tally, log *slog.Logger) error {
	tick := time.NewTicker(s.cfg.liveInterval)
	defer tick.Stop()
	flush := func(ctx context.Context) {
		if _, err := t.FlushBans(ctx, s.mgr.GetClient(), s.mgr.GetAPIReader(), log, time.Now()); err != nil {
			log.Warn("adding ban counters to RepoBan status", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			flush(fctx)
			return nil
		case <-tick.C:
			flush(ctx)
		}
	}
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

// everyReplica runs f on every replica, leader or not.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// healthChecks collects the checks components register on the manager and
// serves them on binderguard's own health listener.
type healthChecks struct {
	manager.Manager
	mu              sync.Mutex
	healthz, readyz map[string]healthz.Checker
}

func (h *healthChecks) AddHealthzCheck(name string, c healthz.Checker) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.healthz[name] = c
	return nil
}

func (h *healthChecks) AddReadyzCheck(name string, c healthz.Checker) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readyz[name] = c
	return nil
}

// handler serves /healthz and /readyz (and /readyz/<check>) like
// controller-runtime's probe server. Checks are fixed once serving starts.
func (h *healthChecks) handler() http.Handler {
	mux := http.NewServeMux()
	for path, checks := range map[string]map[string]healthz.Checker{"/healthz": h.healthz, "/readyz": h.readyz} {
		hh := http.StripPrefix(path, &healthz.Handler{Checks: checks})
		mux.Handle(path, hh)
		mux.Handle(path+"/", hh)
	}
	return mux
}

// statusRelay hands the latest policy build from the informer source (on
// every replica) to the status writer (on the leader only). A replica that
// becomes leader writes the latest build at once.
type statusRelay struct {
	mu     sync.Mutex
	latest *kube.Build
	kick   chan struct{}
}

func newStatusRelay() *statusRelay { return &statusRelay{kick: make(chan struct{}, 1)} }

// offer keeps a copy of b (the source reuses its own) and wakes the
// writer. It never fails: retries are the writer's, on the leader.
func (r *statusRelay) offer(_ context.Context, b kube.Build) error {
	cp := kube.Build{Snapshot: b.Snapshot, Objects: append([]snapshot.ObjectStatus(nil), b.Objects...)}
	for i := range b.RepoBans {
		cp.RepoBans = append(cp.RepoBans, *b.RepoBans[i].DeepCopy())
	}
	for i := range b.LaunchPolicies {
		cp.LaunchPolicies = append(cp.LaunchPolicies, *b.LaunchPolicies[i].DeepCopy())
	}
	r.mu.Lock()
	r.latest = &cp
	r.mu.Unlock()
	r.wake()
	return nil
}

func (r *statusRelay) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run writes the latest build's statuses until ctx ends, retrying failed
// writes with backoff (a conflict, the API server briefly away).
func (r *statusRelay) run(ctx context.Context, w *status.Writer, log *slog.Logger) error {
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-retry.C:
		}
		r.mu.Lock()
		b := r.latest
		r.mu.Unlock()
		if b == nil {
			continue
		}
		n, err := w.Write(ctx, b.RepoBans, b.LaunchPolicies, b.Objects)
		if err != nil && ctx.Err() == nil {
			log.Warn("writing policy status", "err", err, "written", n, "retry_in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if n > 0 {
			log.Info("policy status written", "objects", n, "version", b.Snapshot.Version)
		}
	}
}
