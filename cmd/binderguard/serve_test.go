package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/sse"
	testenv "github.com/binderguard/binderguard/test/envtest"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/freeport"
	"github.com/binderguard/binderguard/webhook/certs"
	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/translate"
)

func TestParseServe(t *testing.T) {
	// The Secret mount the default self-signed mode needs.
	good := []string{"--upstream", "http://binder.ns.svc", "--cert-dir", t.TempDir()}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string // "" = valid
		check   func(t *testing.T, c serveConfig)
	}{
		"the upstream is required": {args: nil, wantErr: "--upstream is required"},
		"an upstream without a scheme is refused": {
			args: []string{"--upstream", "binder:80", "--leader-elect=false"}, wantErr: "want an http or https URL",
		},
		"an upstream with a path is refused, since BinderHub's base URL lives in its own paths": {
			args: []string{"--upstream", "http://binder/hub/", "--leader-elect=false"}, wantErr: "no path",
		},
		"a listen address without a port is refused": {
			args: append(slices.Clone(good), "--gate-addr", "8081", "--leader-elect=false"), wantErr: "--gate-addr",
		},
		"a webhook port out of range is refused": {
			args: append(slices.Clone(good), "--webhook-port", "70000", "--leader-elect=false"), wantErr: "--webhook-port",
		},
		"a missing cert dir is refused": {
			args: append(slices.Clone(good), "--cert-dir", "/does/not/exist", "--leader-elect=false"), wantErr: "--cert-dir",
		},
		"an unknown log level is refused": {
			args: append(slices.Clone(good), "--log-level", "loud", "--leader-elect=false"), wantErr: "--log-level",
		},
		"a bad trusted peer is refused": {
			args: append(slices.Clone(good), "--gate-trusted-peers", "10.0.0.0/8,nope", "--leader-elect=false"), wantErr: "--gate-trusted-peers",
		},
		"an unknown certificate mode is refused": {
			args: append(slices.Clone(good), "--webhook-cert-mode", "cert-manager"), env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "--webhook-cert-mode",
		},
		"self-signed certificates need the Secret's mount": {
			args: []string{"--upstream", "http://binder.ns.svc"}, env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "needs --cert-dir",
		},
		"self-signed certificates need the install's namespace": {
			args: append(slices.Clone(good), "--namespace=", "--leader-elect=false"), wantErr: "install's namespace",
		},
		"external certificates need neither": {
			args: []string{"--upstream", "http://binder.ns.svc", "--webhook-cert-mode=external", "--namespace=", "--leader-elect=false"},
			check: func(t *testing.T, c serveConfig) {
				if c.certMode != certs.External || c.installNamespace != "" {
					t.Errorf("mode %s install namespace %q, want external and none", c.certMode, c.installNamespace)
				}
			},
		},
		"without the webhook no certificate is needed, whatever the mode": {
			args: []string{"--upstream", "http://binder.ns.svc", "--webhook=false"}, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.webhook {
					t.Error("webhook on, want off")
				}
			},
		},
		"stray arguments are refused": {
			args: append(slices.Clone(good), "extra"), env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "unexpected arguments",
		},
		"the pod's namespace is watched and holds the lease by default": {
			args: good, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.namespace != "binder" || c.leaseNamespace != "binder" || !c.leaderElect {
					t.Errorf("namespace %q lease %q leaderElect %v, want binder, binder, true", c.namespace, c.leaseNamespace, c.leaderElect)
				}
				if c.gateEndpoint != (ir.Endpoint{}) || c.envoyListen.String() != "0.0.0.0:8080" || c.xffHops != 1 {
					t.Errorf("gate endpoint %s, envoy listen %s, xff hops %d", c.gateEndpoint, c.envoyListen, c.xffHops)
				}
				if c.upstream.Host != "binder.ns.svc" || !c.webhook || c.webhookPort != 9443 {
					t.Errorf("upstream %s, webhook %v on port %d", c.upstream, c.webhook, c.webhookPort)
				}
				if c.certMode != certs.SelfSigned || c.installNamespace != "binder" {
					t.Errorf("certificate mode %s for namespace %q, want self-signed for binder", c.certMode, c.installNamespace)
				}
			},
		},
		"an explicit empty namespace watches every namespace": {
			args: append(slices.Clone(good), "--namespace="), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.namespace != "" || c.leaseNamespace != "binder" {
					t.Errorf("namespace %q lease %q, want all and binder", c.namespace, c.leaseNamespace)
				}
			},
		},
		"extra provider prefixes are read": {
			args: append(slices.Clone(good), "--extra-providers", " custom, my.forge"), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if got := c.providers.Extra(); !slices.Equal(got, []string{"custom", "my.forge"}) {
					t.Errorf("extra providers %q, want custom and my.forge", got)
				}
			},
		},
		"no extra providers by default": {
			args: good, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.providers.Known("custom") || !c.providers.Known("gh") {
					t.Errorf("default providers %q", c.providers.Providers())
				}
			},
		},
		"an extra provider that is built in is refused": {
			args: append(slices.Clone(good), "--extra-providers", "custom,gh"), env: map[string]string{"POD_NAMESPACE": "binder"},
			wantErr: `--extra-providers: extra provider "gh" is one of BinderHub's built-in providers`,
		},
		"a headless gate Service can be named as the gate endpoint": {
			args: append(slices.Clone(good), "--gate-endpoint", "binderguard-gate.ns.svc:8081", "--gate-trusted-peers", "10.0.0.0/8, fd00::/8"),
			env:  map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.gateEndpoint.Host != "binderguard-gate.ns.svc" || len(c.trustedPeers) != 2 {
					t.Errorf("gate endpoint %s, trusted %v", c.gateEndpoint, c.trustedPeers)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := parseServe(tc.args, io.Discard, env(tc.env))
			if tc.wantErr != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestServeAgainstAPIServer runs the whole in-cluster wiring in process
// against a real kube-apiserver and etcd, with a real Envoy programmed by
// it: policies flow from the API server to the gate, the xDS server (and
// so Envoy) and the webhook the API server calls, and the elected leader
// writes their status.
func TestServeAgainstAPIServer(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := testOutput(t)
	log := newLogger(out, slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t, testenv.WithWebhooks(envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, "manifests", "webhook", "webhook.yaml")},
	}))
	// webhook.yaml as it stands, before kustomize sets the install's
	// namespace, admits pods of namespace binderhub only.
	const ns = "binderhub"
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	fb, err := fakebinder.New(fakebinder.Config{BuildTime: 100 * time.Millisecond, LaunchTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	binder := httptest.NewServer(fb.Handler())
	t.Cleanup(func() { fb.Close(); binder.Close() })

	wo := env.Webhook
	envoyAddr, envoyAdmin := freeAddr(t), freeAddr(t)
	c, err := parseServe([]string{
		"--upstream", binder.URL, "--envoy-listen", envoyAddr,
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--webhook-port", strconv.Itoa(wo.LocalServingPort), "--cert-dir", wo.LocalServingCertDir,
		"--webhook-cert-mode=external", // envtest made the certificate and the caBundle
		"--namespace", ns,
	}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c.webhookHost = wo.LocalServingHost
	s, err := newInCluster(env.Config, c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := startServe(t, s)

	get := func(url string) (*http.Response, error) {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, err
	}
	healthURL := "http://" + s.healthLis.Addr().String()
	testenv.Eventually(t, 20*time.Second, "/readyz answers 200 (policies loaded, webhook serving)", func() error {
		resp, err := get(healthURL + "/readyz")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return nil
	})

	// A ban, created as kubectl would.
	ban := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "miner"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}, Mode: v1alpha1.ModeEnforce,
			Message: "This repository mines cryptocurrency."},
	}
	if err := env.Client.Create(ctx, ban); err != nil {
		t.Fatal(err)
	}

	// Probe only once the informer has delivered the ban: a probe before
	// that would be a real launch (led by the gate, counted below).
	banned, err := spec.Parse("gh/bad/miner/HEAD")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the ban reaches the policy snapshot", func() error {
		if _, ok := s.store.Load().Ban(banned, time.Now()); !ok {
			return errors.New("not yet")
		}
		return nil
	})

	// (1) The gate refuses launches of it, in every spelling, with one
	// failed event (403) on a 200 stream.
	gateURL := "http://" + s.gateLis.Addr().String()
	for _, path := range []string{"/build/gh/bad/miner/HEAD", "/build/gh/Bad/Miner.git/main"} {
		testenv.Eventually(t, 5*time.Second, "gate refuses "+path, func() error {
			resp, err := get(gateURL + path)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d, want 200 with a failed event", resp.StatusCode)
			}
			ev, err := sse.NewReader(resp.Body).Next()
			if err != nil {
				return fmt.Errorf("reading the first event: %w", err)
			}
			p, err := ev.Decode()
			if err != nil {
				return err
			}
			if p.Phase != "failed" || p.StatusCode != http.StatusForbidden || !strings.Contains(p.Message, "mines cryptocurrency") {
				return fmt.Errorf("first event %s, want failed 403 with the ban's message", ev.Data)
			}
			return nil
		})
	}
	if st := fb.Stats(); st.BuildsStarted != 0 || st.Launches != 0 {
		t.Errorf("a refused launch reached BinderHub: %+v", st)
	}

	// (2) The leader marks it Accepted for its generation.
	testenv.Eventually(t, 10*time.Second, "RepoBan Accepted=True", func() error {
		var got v1alpha1.RepoBan
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ban), &got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionTrue || got.Status.ObservedGeneration != got.Generation || cond.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v at generation %d", got.Status, got.Generation)
		}
		return nil
	})

	// (3) An object the CRD admits but binderguard cannot use is marked
	// Accepted=False with the reason; the valid ban stays in force.
	broken := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"git/notaurl"}},
	}
	if err := env.Client.Create(ctx, broken); err != nil {
		t.Fatalf("the CRD now refuses %v itself; pick an object only binderguard's parser refuses: %v", broken.Spec.Repos, err)
	}
	testenv.Eventually(t, 10*time.Second, "invalid RepoBan Accepted=False", func() error {
		var got v1alpha1.RepoBan
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(broken), &got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonInvalid ||
			!strings.Contains(cond.Message, "spec.repos[0]") || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})

	// (4) The xDS server gives an ADS client a ban slot that answers the
	// ban at the edge.
	assertEdgeBan(t, ctx, s.xdsLis.Addr().String(), "/build/gh/bad/miner/")

	// A real Envoy bootstrapped like the sidecar takes its whole config from
	// serve's xDS server: the ban is answered at the edge, other launches go
	// through the gate to BinderHub, everything else straight to BinderHub.
	envoyDone := startEnvoy(t, ctx, out, s.xdsLis.Addr().String(), envoyAdmin)
	edge := "http://" + envoyAddr
	testenv.Eventually(t, 15*time.Second, "Envoy answers the ban itself", func() error {
		resp, err := get(edge + "/build/gh/bad/miner/HEAD")
		if err != nil {
			return err
		}
		if cls := resp.Header.Get(translate.HeaderClass); resp.StatusCode != http.StatusOK || cls != "banned" {
			return fmt.Errorf("status %d class %q, want 200 from the edge's banned rule", resp.StatusCode, cls)
		}
		return nil
	})
	resp, err := get(edge + "/versions")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /versions through Envoy: %v %v", resp, err)
	}
	if phase := launch(t, ctx, edge+"/build/gh/good/repo/HEAD"); phase != sse.PhaseReady {
		t.Errorf("a launch through Envoy and the gate ended with %q, want ready", phase)
	}
	if st := fb.Stats(); st.BuildsStarted != 1 || st.Launches != 1 {
		t.Errorf("BinderHub saw %+v, want the one allowed build and launch", st)
	}
	if n := counter(t, s.reg, "binderguard_launches_total", "outcome", "lead"); n != 1 {
		t.Errorf("the gate led %v launches, want 1: Envoy must send launches through the gate, not the fallback", n)
	}

	// The webhook, registered on the manager, is what the API server calls:
	// a build pod of the banned repository is refused.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build-miner", Labels: map[string]string{"component": "binderhub-build"},
			Annotations: map[string]string{"binder-repo": "https://github.com/bad/miner"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024.07.0"}}},
	}
	err = env.Client.Create(ctx, pod)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "mines cryptocurrency") {
		t.Errorf("creating a build pod of a banned repository: err = %v, want a denial with the ban's message", err)
	}

	// Metrics: one scrape of binderguard's registry and controller-runtime's
	// holds both without collisions.
	if _, err := (prometheus.Gatherers{s.reg, crmetrics.Registry}).Gather(); err != nil {
		t.Errorf("gathering metrics: %v", err)
	}
	resp, err = get("http://" + s.metricsLis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"binderguard_", "leader_election_master_status", "go_goroutines"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM (the context ending) stops everything.
	stop()
	<-envoyDone
	if _, err := get(gateURL + "/healthz"); err == nil {
		t.Errorf("the gate still answers after serve stopped")
	}
}

// testOutput is t.Output() until the test has ended, then nothing:
// controller-runtime's global logger and stray component goroutines may
// still write after it, which t.Output() does not allow.
func testOutput(t *testing.T) io.Writer {
	w := &guardedWriter{w: t.Output()}
	t.Cleanup(w.close) // registered first, so it runs last
	return w
}

type guardedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *guardedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// counter reads one series of a counter from reg.
func counter(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// freeAddr returns a loopback address with a port free right now, for
// listeners that binderguard does not bind itself (Envoy's).
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startEnvoy runs a real Envoy bootstrapped against xdsAddr until ctx
// ends; the returned channel closes when it has stopped.
func startEnvoy(t *testing.T, ctx context.Context, out io.Writer, xdsAddr, adminAddr string) <-chan struct{} {
	t.Helper()
	xa, err := ir.ParseEndpoint(xdsAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	aa, err := ir.ParseEndpoint(adminAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	boot, err := bootstrap.YAML(bootstrap.Options{NodeID: "serve-test", Cluster: "binderguard", XDS: xa, Admin: aa})
	if err != nil {
		t.Fatal(err)
	}
	sup, err := envoyproc.New(envoyproc.Config{Bootstrap: boot, Output: out, Args: []string{"--concurrency", "1"}})
	if err != nil {
		t.Fatalf("this test runs a real Envoy (ENVOY_BIN, PATH or .tools/venv/bin/envoy; make tools): %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sup.Run(ctx); err != nil {
			t.Errorf("envoy: %v", err)
		}
	}()
	return done
}

// launch follows one launch stream to its last phase.
func launch(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream") // as BinderHub requires
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("launch %s: %v", url, err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	last := ""
	for {
		ev, err := r.Next()
		if err != nil {
			return last
		}
		if ev.IsComment() {
			continue
		}
		last = ev.Phase
		if last == sse.PhaseReady || last == "failed" {
			return last
		}
	}
}

// assertEdgeBan asks the xDS server for the edge route configuration over
// ADS until it carries a rule for prefix, ACKing each version.
func assertEdgeBan(t *testing.T, ctx context.Context, addr, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening an ADS stream: %v", err)
	}
	// Bans are in the ECDS ban slots (translate.BanSlots).
	var slots []string
	for i := range translate.BanSlots {
		slots = append(slots, translate.BanSlotName(i))
	}
	req := &discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: "serve-test", Cluster: "binderguard"},
		TypeUrl:       resource.ExtensionConfigType,
		ResourceNames: slots,
	}
	for {
		if err := stream.Send(req); err != nil {
			t.Fatalf("sending an ECDS request: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("no ban slot carrying %s over ADS: %v", prefix, err)
		}
		for _, r := range resp.Resources {
			js, err := protojson.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(js, []byte(prefix)) {
				return
			}
		}
		req.VersionInfo, req.ResponseNonce = resp.VersionInfo, resp.Nonce
	}
}

// startServe runs s until stop, which the test's cleanup also calls: stop
// ends s's context and waits up to 30 s for it to return.
func startServe(t *testing.T, s *inCluster) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("serve did not stop within 30 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return ctx, stop
}

// TestServeWithoutTheWebhook runs serve with --webhook=false (the chart's
// webhook.enabled: false) against a real API server: it turns ready with
// no certificate anywhere (the default self-signed mode would wait for
// its Secret to be mounted) and serves nothing on the webhook port.
func TestServeWithoutTheWebhook(t *testing.T) {
	log := newLogger(testOutput(t), slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t)
	ns := env.Namespace(t)
	webhookAddr := freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(webhookAddr)
	c, err := parseServe([]string{
		"--upstream", "http://binder.example", "--webhook=false", "--webhook-port", webhookPort,
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--namespace", ns, "--leader-elect=false",
	}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := newInCluster(env.Config, c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := startServe(t, s)
	readyz := "http://" + s.healthLis.Addr().String() + "/readyz?verbose"
	var checks string
	testenv.Eventually(t, 20*time.Second, "/readyz answers 200 without a webhook certificate", func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		checks = string(b)
		return nil
	})
	if strings.Contains(checks, "webhook") {
		t.Errorf("/readyz checks the webhook although it is off:\n%s", checks)
	}
	if conn, err := net.DialTimeout("tcp", webhookAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("something listens on the webhook port %s with --webhook=false", webhookAddr)
	}
}
