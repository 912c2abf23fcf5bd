package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/file"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
)

// localConfig is what `binderguard local` was asked to run.
type localConfig struct {
	upstream                                 *url.URL
	listen, admin, gate, xds, metrics, stats ir.Endpoint
	policies                                 string
	xffHops                                  uint
	delta                                    bool
	envoyLogLevel                            string
	logLevel                                 slog.Level
	providers                                *spec.Parser
	corsOrigin                               string
}

func parseLocal(args []string, stdout io.Writer) (localConfig, error) {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	upstream := fs.String("upstream", "", "BinderHub base URL, e.g. http://127.0.0.1:8585 (required)")
	listen := fs.String("listen", "127.0.0.1:8080", "address Envoy serves BinderHub on")
	admin := fs.String("admin", "127.0.0.1:9901", "Envoy admin address")
	gateAddr := fs.String("gate", "127.0.0.1:8081", "launch gate address (Envoy reaches it over h2c)")
	xds := fs.String("xds", "127.0.0.1:18000", "xDS (ADS) server address")
	metrics := fs.String("metrics", "127.0.0.1:8082", "binderguard metrics address (/metrics)")
	stats := fs.String("stats", "127.0.0.1:9902", "Envoy stats listener serving only /stats/prometheus (empty: none)")
	policies := fs.String("policies", "", "directory of RepoBan and LaunchPolicy YAML files, watched (required)")
	xffHops := fs.Uint("xff-trusted-hops", 0, "proxies in front of Envoy whose X-Forwarded-For entries are trusted")
	delta := fs.Bool("delta", true, "Envoy uses incremental (delta) xDS; state of the world (--delta=false) re-sends every ban slot on each ban edit")
	envoyLog := fs.String("envoy-log-level", "warn", "Envoy's --log-level")
	logLevel := fs.String("log-level", "info", "binderguard log level: debug, info, warn, error")
	extra := fs.String("extra-providers", "", extraProvidersUsage)
	cors := fs.String("cors-allow-origin", "", corsAllowOriginUsage)
	if err := parseFlags(fs, args, stdout, nil); err != nil {
		return localConfig{}, err
	}
	c := localConfig{policies: *policies, xffHops: *xffHops, delta: *delta, envoyLogLevel: *envoyLog}
	if *upstream == "" || *policies == "" {
		return c, usageErr("--upstream and --policies are required")
	}
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, usageErr("--upstream %q: want an http or https URL with a host", *upstream)
	}
	c.upstream = u
	if c.providers, err = parseExtraProviders(*extra); err != nil {
		return c, err
	}
	if c.corsOrigin, err = parseCORSAllowOrigin(*cors); err != nil {
		return c, err
	}
	if st, err := os.Stat(*policies); err != nil || !st.IsDir() {
		return c, usageErr("--policies %q is not a directory", *policies)
	}
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, usageErr("--log-level: %v", err)
	}
	for _, a := range []struct {
		flag, val string
		into      *ir.Endpoint
	}{{"listen", *listen, &c.listen}, {"admin", *admin, &c.admin}, {"gate", *gateAddr, &c.gate},
		{"xds", *xds, &c.xds}, {"metrics", *metrics, &c.metrics}, {"stats", *stats, &c.stats}} {
		if a.val == "" && a.flag == "stats" {
			continue
		}
		if *a.into, err = ir.ParseEndpoint(a.val, "127.0.0.1"); err != nil {
			return c, usageErr("--%s: %v", a.flag, err)
		}
	}
	return c, nil
}

// runLocal runs the whole data path on one machine: file policies, the
// launch gate, the xDS server and a supervised Envoy in front of BinderHub.
func runLocal(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseLocal(args, stdout)
	if err != nil {
		return err
	}
	envoyBin, err := envoyproc.Find() // fail before binding anything
	if err != nil {
		return err
	}
	log := newLogger(os.Stderr, c.logLevel)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Bind every listener first, so a busy port is reported before Envoy starts.
	xdsLis, err := net.Listen("tcp", c.xds.String())
	if err != nil {
		return fmt.Errorf("listening for xDS: %w", err)
	}
	defer xdsLis.Close()
	gateLis, err := net.Listen("tcp", c.gate.String())
	if err != nil {
		return fmt.Errorf("listening for the gate: %w", err)
	}
	defer gateLis.Close()
	metricsLis, err := net.Listen("tcp", c.metrics.String())
	if err != nil {
		return fmt.Errorf("listening for metrics: %w", err)
	}
	defer metricsLis.Close()

	// Policies: the directory, watched, into a snapshot store. The first
	// load happens here so a broken directory stops us before Envoy starts.
	store := snapshot.NewStore(snapshot.Empty())
	src, err := file.New(file.Config{Dir: c.policies, Store: store, Logger: log})
	if err != nil {
		return err
	}
	if err := src.Reload(); err != nil {
		return fmt.Errorf("loading policies: %w", err)
	}

	// The gate and the control plane.
	d, err := newDataPath(dataPathConfig{
		store:        store,
		upstream:     c.upstream,
		providers:    c.providers,
		edge:         localEdgeBase(c),
		trustedPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		corsOrigin:   c.corsOrigin,
		reg:          reg,
		log:          log,
		gateLis:      gateLis,
		xdsLis:       xdsLis,
		gateGrace:    2 * time.Second,
	})
	if err != nil {
		return err
	}
	defer d.gate.Close() // also on an early return, before the gate server runs; Close is idempotent
	if err := d.ctl.Sync(ctx); err != nil {
		return fmt.Errorf("building the first edge config: %w", err)
	}

	// Envoy.
	boot, err := bootstrap.YAML(bootstrap.Config{NodeID: "binderguard-local", XDS: loopback(c.xds), Admin: c.admin, Stats: c.stats, Delta: c.delta})
	if err != nil {
		return fmt.Errorf("building the Envoy bootstrap: %w", err)
	}
	envoy, err := envoyproc.New(envoyproc.Config{Binary: envoyBin, Bootstrap: boot, Output: os.Stderr, LogLevel: c.envoyLogLevel, Logger: log.With("component", "envoy")})
	if err != nil {
		return fmt.Errorf("preparing Envoy: %w", err)
	}

	// Envoy outlives the gate's shutdown: the failed events that tell held
	// launches to retry go out through it, so it is stopped only after the
	// gate server has ended (see stopEnvoyAfter).
	envoyCtx, stopEnvoy := context.WithCancel(context.Background())
	defer stopEnvoy()

	var wg sync.WaitGroup
	errc := make(chan error, len(d.runnables)+3) // one slot per run below: a failing goroutine never blocks
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	metricsSrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	for _, r := range d.runnables {
		run(r.name, func() error { return r.run(ctx) })
	}
	run("metrics server", func() error { return serveHTTP(ctx, metricsSrv, metricsLis, time.Second, nil) })
	run("policy directory", func() error { return src.Run(ctx) })
	run("envoy", func() error { return envoy.Run(envoyCtx) })

	stats := "none"
	if c.stats.Port != 0 {
		stats = "http://" + c.stats.String() + bootstrap.StatsPath
	}
	fmt.Fprintf(stdout, "binderguard local: BinderHub %s via Envoy http://%s (admin http://%s, stats %s), gate %s, xDS %s, metrics http://%s/metrics, policies %s\n",
		c.upstream, c.listen, c.admin, stats, c.gate, c.xds, c.metrics, c.policies)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		log.Error("stopping", "err", runErr)
	}
	cancel()
	stopEnvoyAfter(d.gateServed, stopEnvoy)
	wg.Wait()
	return runErr
}

// envoyFlush is how long Envoy stays up after the gate server ended, for
// the last events to leave it: far longer than a loopback hop.
const envoyFlush = 250 * time.Millisecond

// stopEnvoyAfter stops Envoy once the gate server has ended and Envoy has
// had envoyFlush to pass on its last events; the gate's own shutdown
// grace bounds the wait.
func stopEnvoyAfter(gateDone <-chan struct{}, stop context.CancelFunc) {
	select {
	case <-gateDone:
		time.Sleep(envoyFlush)
	case <-time.After(5 * time.Second):
	}
	stop()
}

// loopback turns a wildcard listen address into one a local client can dial.
func loopback(a ir.Endpoint) ir.Endpoint {
	if a.Host == "0.0.0.0" || a.Host == "::" || a.Host == "" {
		a.Host = "127.0.0.1"
	}
	return a
}

// localEdgeBase is the static part of the edge from local's flags: Envoy
// reaches the gate over loopback.
func localEdgeBase(c localConfig) ir.Edge {
	gateAt := loopback(c.gate)
	return edgeBase(ir.Endpoint{Host: c.listen.Host, Port: c.listen.Port}, uint32(c.xffHops), c.upstream,
		ir.Endpoint{Host: gateAt.Host, Port: gateAt.Port}, false)
}
