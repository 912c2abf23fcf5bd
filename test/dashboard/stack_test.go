package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/file"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/freeport"
	"github.com/binderguard/binderguard/webhook"
	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/xds/envoyproc"
)

// scrapeTargets are the addresses Prometheus scrapes, by job.
type scrapeTargets struct {
	binderguard, envoy, binderhub, webhook string
}

// stack is `binderguard local` in front of the simulator, plus the
// admission handlers (which `local` does not run: they need Kubernetes)
// serving reviews and their metrics on loopback.
type stack struct {
	edgeURL, webhookURL string
	policies            string
	targets             scrapeTargets
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func buildBinderguard(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "binderguard")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/binderguard/binderguard/cmd/binderguard").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/binderguard: %v\n%s", err, out)
	}
	return bin
}

// The policies the storm runs under: one ban, and a breaker that opens on
// the first failed build.
const (
	banYAML = `apiVersion: binderguard.io/v1alpha1
kind: RepoBan
metadata:
  name: banned
spec:
  repos: ["gh/banned/repo"]
  message: banned in the dashboard test
`
	policyYAML = `apiVersion: binderguard.io/v1alpha1
kind: LaunchPolicy
metadata:
  name: default
spec:
  mode: Enforce
  collapse:
    enabled: true
  breaker:
    consecutiveFailures: 1
    openDuration: 5m
`
)

func startStack(t *testing.T, fb fakebinder.Config) *stack {
	t.Helper()
	envoy, err := envoyproc.Find()
	if err != nil {
		t.Fatalf("this test needs a real Envoy: %v", err)
	}
	bin := buildBinderguard(t)
	s := &stack{policies: t.TempDir()}
	for name, y := range map[string]string{"ban.yaml": banYAML, "policy.yaml": policyYAML} {
		if err := os.WriteFile(filepath.Join(s.policies, name), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	sim, err := fakebinder.New(fb)
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	t.Cleanup(sim.Close)
	s.targets.binderhub = serve(t, sim.Handler())

	s.startWebhook(t)

	listen, metrics, stats := freeAddr(t), freeAddr(t), freeAddr(t)
	s.edgeURL = "http://" + listen
	s.targets.binderguard, s.targets.envoy = metrics, stats
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "local",
		"--upstream", "http://"+s.targets.binderhub, "--listen", listen, "--admin", freeAddr(t),
		"--gate", freeAddr(t), "--xds", freeAddr(t), "--metrics", metrics, "--stats", stats,
		"--policies", s.policies)
	cmd.Env = append(os.Environ(), "ENVOY_BIN="+envoy)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting binderguard local: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("binderguard local stderr:\n%s", stderr.tail(30))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if launch(s.edgeURL, "gh/warm/up/HEAD", 10*time.Second).Phase == sse.PhaseReady {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("binderguard local never served a launch in 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startWebhook serves the real admission handlers, reading the same
// policy directory through the file source, over plain HTTP (the API
// server's TLS is not what the dashboard shows), and their metrics.
func (s *stack) startWebhook(t *testing.T) {
	t.Helper()
	store := snapshot.NewStore(snapshot.Empty())
	src, err := file.New(file.Config{Dir: s.policies, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err != nil {
		t.Fatalf("loading policies for the webhook: %v", err)
	}
	reg := prometheus.NewRegistry()
	hooks, err := admission.New(admission.Config{Policies: webhook.PolicySource(store, nil), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(admission.MutatePath, &cradmission.Webhook{Handler: hooks.Mutating})
	mux.Handle(admission.ValidatePath, &cradmission.Webhook{Handler: hooks.Validating})
	s.webhookURL = "http://" + serve(t, mux)
	s.targets.webhook = serve(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// launch GETs /build/<spec> and returns the last event (failed or ready).
func launch(base, spec string, timeout time.Duration) sse.Payload {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/build/"+spec, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sse.Payload{}
	}
	defer resp.Body.Close()
	rd := sse.NewReader(bufio.NewReader(resp.Body))
	var last sse.Payload
	for {
		ev, err := rd.Next()
		if err != nil {
			return last
		}
		if ev.IsComment() {
			continue
		}
		p, err := ev.Decode()
		if err != nil {
			return last
		}
		last = p
		if p.Phase == sse.PhaseFailed || p.Phase == sse.PhaseReady {
			return last
		}
	}
}

// review posts one AdmissionReview (JSON) and reports a transport error or
// an answer that is not a review.
func (s *stack) review(path, body string) error {
	resp, err := http.Post(s.webhookURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("posting a review to %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"response"`) {
		return fmt.Errorf("review to %s: %s %s", path, resp.Status, b)
	}
	return nil
}

// get fetches a page through the edge; any HTTP answer will do.
func get(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return fmt.Errorf("getting %s: %w", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
