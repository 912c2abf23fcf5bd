package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/webhook/certs"
	"github.com/binderguard/binderguard/xds/ir"
)

// serveConfig is what `binderguard serve` was asked to run.
type serveConfig struct {
	upstream *url.URL
	// Listen addresses; port 0 picks a free port (tests).
	gateAddr, xdsAddr, metricsAddr, healthAddr string
	// envoyListen is where Envoy serves BinderHub (programmed over xDS);
	// gateEndpoint is how Envoy reaches the gates without --gate-service
	// (zero: this replica's gate on loopback).
	envoyListen, gateEndpoint ir.Endpoint
	// gateService names the headless Service (in installNamespace) whose
	// EndpointSlices list the gates Envoy balances launches over (EDS);
	// empty: Envoy dials gateEndpoint.
	gateService  string
	xffHops      uint32
	trustedPeers []netip.Prefix
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
	// corsOrigin is BinderHub's cors_allow_origin, for the answers
	// binderguard makes itself on /build.
	corsOrigin string
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
	gateEndpoint := fs.String("gate-endpoint", "", "host:port Envoy dials for the gate, resolved by DNS (default: this replica's gate on 127.0.0.1; in a cluster use --gate-service)")
	xdsAddr := fs.String("xds-addr", "127.0.0.1:18000", "xDS (ADS) server listen address; only the Envoy sidecar connects, over loopback")
	envoyListen := fs.String("envoy-listen", "0.0.0.0:8080", "address Envoy's listener serves BinderHub on (programmed over xDS)")
	xffHops := fs.Uint("xff-trusted-hops", 1, "proxies in front of Envoy (the ingress controller) whose X-Forwarded-For entry names the client")
	gateService := fs.String("gate-service", "", "headless Service in $POD_NAMESPACE whose EndpointSlices list the gate replicas (its port named \"gate\"); Envoy gets them over EDS, including replicas not Ready yet, and its health check decides (empty: Envoy dials --gate-endpoint)")
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
	cors := fs.String("cors-allow-origin", "", corsAllowOriginUsage)
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
	if c.corsOrigin, err = parseCORSAllowOrigin(*cors); err != nil {
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
	c.gateService = *gateService
	if c.gateService != "" {
		if errs := validation.IsDNS1035Label(c.gateService); len(errs) > 0 {
			return c, usageErr("--gate-service %q: not a Service name: %s", c.gateService, strings.Join(errs, "; "))
		}
		if *gateEndpoint != "" {
			return c, usageErr("--gate-service and --gate-endpoint both name the gates: give one")
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
	if c.gateService != "" && c.installNamespace == "" {
		return c, usageErr("--gate-service needs the install's namespace (POD_NAMESPACE or --namespace)")
	}
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
