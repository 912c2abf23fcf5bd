package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const alertmanagerFile = "../../manifests/alerts/alertmanager.yaml"

// The receiver URLs in the shipped alertmanager.yaml; tests point them at
// a local receiver, keeping the routing.
const shippedReceiverBase = "http://alert-bridge.monitoring.svc"

// notification is one webhook POST from Alertmanager, as received.
type notification struct {
	path   string // /page or /chat: which receiver the route chose
	at     time.Time
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// receiver stands in for the team's pager and chat bridges.
type receiver struct {
	url string
	mu  sync.Mutex
	got []notification
}

func startReceiver(t testing.TB) *receiver {
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := notification{path: req.URL.Path, at: time.Now()}
		if err := json.NewDecoder(req.Body).Decode(&n); err != nil {
			t.Errorf("receiver: decoding Alertmanager's POST: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// wait returns the first firing notification of alertname, failing after timeout.
func (r *receiver) wait(t testing.TB, alertname string, timeout time.Duration) notification {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, n := range r.got {
			for _, a := range n.Alerts {
				if a.Labels["alertname"] == alertname && a.Status == "firing" {
					r.mu.Unlock()
					return n
				}
			}
		}
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no firing %s reached the receiver within %v; got %+v", alertname, timeout, r.got)
	return notification{}
}

// alerting is how fast the pipeline runs: production values, or short ones
// for make test.
type alerting struct {
	scrape, eval time.Duration
	// shortFor, when set, replaces every rule's `for:` in a copy of the
	// rules; the promtool unit tests (test/alerts) pin the shipped values.
	shortFor string
	// groupWait, when set, replaces every group_wait in a copy of the
	// Alertmanager config; routes and receivers stay as shipped.
	groupWait string
}

// startAlerting runs the real Prometheus (shipped rules) and Alertmanager
// (shipped routing, receivers pointed at rcv) on loopback, scraping the
// stack's three exporters. It returns Prometheus' URL once every target
// has been scraped up.
func startAlerting(t testing.TB, s *stack, a alerting, rcv *receiver) string {
	t.Helper()
	prom, am := binary(t, "prometheus"), binary(t, "prometheus-alertmanager")
	dir := t.TempDir()

	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatalf("reading the rules: %v", err)
	}
	if a.shortFor != "" {
		rules = regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 "+a.shortFor))
	}
	amConfig, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatalf("reading the alertmanager config: %v", err)
	}
	if !strings.Contains(string(amConfig), shippedReceiverBase) {
		t.Fatalf("%s no longer sends to %s: update the test's rewrite", alertmanagerFile, shippedReceiverBase)
	}
	amConfig = []byte(strings.ReplaceAll(string(amConfig), shippedReceiverBase, rcv.url))
	if a.groupWait != "" {
		amConfig = regexp.MustCompile(`(?m)^(\s+group_wait:) \S+$`).ReplaceAll(amConfig, []byte("$1 "+a.groupWait))
	}

	amAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	host := func(u string) string { p, _ := url.Parse(u); return p.Host }
	promConfig := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%q]}]
scrape_configs:
  - job_name: binderguard
    static_configs: [{targets: [%q]}]
  - job_name: envoy
    metrics_path: /stats/prometheus
    static_configs: [{targets: [%q]}]
  - job_name: binderhub
    static_configs: [{targets: [%q]}]
`, promDuration(a.scrape), promDuration(a.eval), filepath.Join(dir, "rules.yaml"), amAddr,
		host(s.metricsURL), host(s.statsURL), host(s.binderURL()))
	for name, body := range map[string][]byte{"rules.yaml": rules, "alertmanager.yaml": amConfig, "prometheus.yaml": []byte(promConfig)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runServer(t, am, "--config.file="+filepath.Join(dir, "alertmanager.yaml"), "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	promURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	runServer(t, prom, "--config.file="+filepath.Join(dir, "prometheus.yaml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+host(promURL))
	deadline := time.Now().Add(30*time.Second + 2*a.scrape)
	for up := 0.0; up != 3; up = promQuery(t, promURL, "sum(up)") {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never had its 3 targets up (sum(up) = %v)", up)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return promURL
}

// promQuery returns the value of a scalar-like instant query, or -1 when
// Prometheus does not answer (yet) or the result is empty.
func promQuery(t testing.TB, promURL, q string) float64 {
	resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) == 0 {
		return -1
	}
	var v float64
	if s, ok := r.Data.Result[0].Value[1].(string); !ok {
		return -1
	} else if _, err := fmt.Sscan(s, &v); err != nil {
		t.Fatalf("query %q: value %q: %v", q, s, err)
	}
	return v
}

// promDuration writes a duration as Prometheus configs spell it.
func promDuration(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

func binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: apt-get install prometheus prometheus-alertmanager", name)
	}
	return p
}

// runServer starts a server process stopped (SIGTERM, then waited for) when the
// test ends; its output is shown if the test failed.
func runServer(t testing.TB, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", filepath.Base(bin), tail([]byte(out.String()), 30))
		}
	})
}
