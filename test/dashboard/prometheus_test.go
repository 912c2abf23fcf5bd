package dashboard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// scrapeInterval is short so a storm of a few seconds leaves several
// samples per series, enough for rate() over rateInterval.
const (
	scrapeInterval = time.Second
	// rateInterval stands in for Grafana's $__rate_interval: four scrapes.
	rateInterval = "4s"
)

// prom is a real Prometheus scraping the stack.
type prom struct {
	url string
}

func prometheusConfig(s scrapeTargets) string {
	job := func(name, path, target string) string {
		return fmt.Sprintf("  - job_name: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%q]\n", name, path, target)
	}
	return fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n", scrapeInterval, scrapeInterval) +
		job("binderguard", "/metrics", s.binderguard) +
		job("envoy", "/stats/prometheus", s.envoy) +
		job("binderhub", "/metrics", s.binderhub) +
		job("binderguard-webhook", "/metrics", s.webhook)
}

// startPrometheus runs Debian's prometheus on loopback with a temporary
// TSDB and waits until it is ready.
func startPrometheus(t *testing.T, targets scrapeTargets) *prom {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found on PATH: install Debian's `prometheus` package (apt-get install prometheus) or run `make tools`")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(prometheusConfig(targets)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.tail(20))
		}
	})
	p := &prom{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after 30 s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// api GETs one Prometheus HTTP API endpoint and decodes its data into
// data; expr only names the query in errors.
func (p *prom) api(endpoint string, v url.Values, expr string, data any) error {
	resp, err := http.Get(p.url + endpoint + "?" + v.Encode())
	if err != nil {
		return fmt.Errorf("querying prometheus: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading prometheus's answer: %w", err)
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decoding prometheus's answer %q: %w", b, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("prometheus refused %s: %s", expr, r.Error)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		return fmt.Errorf("decoding the data for %s: %w", expr, err)
	}
	return nil
}

// query evaluates expr at time at through /api/v1/query and returns the
// series of the vector it gives (a scalar or string counts as one).
func (p *prom) query(expr string, at time.Time) ([]sample, error) {
	v := url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query", v, expr, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return []sample{{}}, nil
	}
	var out []sample
	if err := json.Unmarshal(d.Result, &out); err != nil {
		return nil, fmt.Errorf("decoding the vector for %s: %w", expr, err)
	}
	return out, nil
}

// numbers drops the series whose value is NaN (a quantile or ratio of
// nothing): a panel draws no point for them.
func numbers(in []sample) []sample {
	var out []sample
	for _, s := range in {
		if v, ok := s.Value[1].(string); ok && v == "NaN" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// latestData evaluates expr once a second over [from, to], as a time series
// panel over that range would, and returns the latest instant with data.
func (p *prom) latestData(expr string, from, to time.Time) ([]sample, time.Time, error) {
	for at := to; !at.Before(from); at = at.Add(-scrapeInterval) {
		s, err := p.query(expr, at)
		if err != nil {
			return nil, at, err
		}
		if s = numbers(s); len(s) > 0 {
			return s, at, nil
		}
	}
	return nil, time.Time{}, nil
}

// waitScraped waits until every one of the jobs has been scraped and is up,
// plus two more scrapes, so the storm's first increases show in rate().
func (p *prom) waitScraped(t *testing.T, jobs int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := p.query("count(up == 1)", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(s) == 1 && s[0].Value[1] == strconv.Itoa(jobs) {
			time.Sleep(2 * scrapeInterval)
			return
		}
		if time.Now().After(deadline) {
			up, _ := p.query("up", time.Now())
			t.Fatalf("prometheus has not scraped all %d jobs after 30 s: up = %v", jobs, up)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
