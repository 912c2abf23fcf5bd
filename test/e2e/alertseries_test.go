package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

const rulesFile = "../../manifests/alerts/binderguard.rules.yaml"

// otherExporters are the series the rules read that no part of this stack
// exports, each with the exporter that does. Everything else a rule reads
// must be scraped below.
var otherExporters = map[string]string{
	"up":                                 "Prometheus itself, for every scrape target",
	"container_cpu_usage_seconds_total":  "cAdvisor, through the kubelet (the binder pod's CPU)",
	"kube_pod_container_resource_limits": "kube-state-metrics (the binder pod's CPU limit)",
}

// ruleFile is the part of a Prometheus rule file the check reads; promtool
// check rules (test/alerts) validates the rest.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string `json:"alert"`
			Record string `json:"record"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// selector is one vector selector of a rule: the metric name and the
// label values it requires (=).
type selector struct {
	rule, name string
	equal      map[string]string
}

// selectors parses every rule's expression with Prometheus' own PromQL
// parser and returns its selectors and the recording rules' outputs.
func selectors(t *testing.T, path string) (sels []selector, recorded map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the rules: %v", err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	recorded = map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if r.Record != "" {
				recorded[r.Record] = true
			}
			expr, err := parser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("rule %s: parsing %q: %v", name, r.Expr, err)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				s := selector{rule: name, equal: map[string]string{}}
				for _, m := range vs.LabelMatchers {
					switch {
					case m.Name == labels.MetricName && m.Type == labels.MatchEqual:
						s.name = m.Value
					case m.Type == labels.MatchEqual:
						s.equal[m.Name] = m.Value
					}
				}
				if s.name == "" {
					t.Errorf("rule %s: selector %s has no metric name; the check cannot follow it", name, vs)
				}
				sels = append(sels, s)
				return nil
			})
		}
	}
	if len(sels) == 0 {
		t.Fatalf("no selectors found in %s", path)
	}
	return sels, recorded
}

// exposed is every series name a scrape showed, with the label sets seen.
type exposed map[string][]map[string]string

// scrape reads one /metrics or /stats/prometheus page into into, expanding
// histograms and summaries into the series Prometheus stores.
func scrape(ctx context.Context, url string, into exposed) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scraping %s: status %d, %v", url, resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("parsing %s: %w", url, err)
	}
	for name, f := range fams {
		suffixes := []string{""}
		switch f.GetType().String() {
		case "HISTOGRAM":
			suffixes = []string{"_bucket", "_sum", "_count"}
		case "SUMMARY":
			suffixes = []string{"", "_sum", "_count"}
		}
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			for _, s := range suffixes {
				into[name+s] = append(into[name+s], ls)
			}
		}
	}
	return nil
}

// has reports whether a series named s.name with s.equal's values was seen.
func (e exposed) has(s selector) bool {
	for _, ls := range e[s.name] {
		ok := true
		for k, v := range s.equal {
			if ls[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Every series an alert rule reads must be one that something exports: the
// simulator (BinderHub's /metrics), binderguard's /metrics, Envoy's
// /stats/prometheus, or an exporter named in otherExporters. A rule on a
// series nobody exports never fires (BinderLaunchesFailing read
// binderhub_launch_count, which BinderHub serves as _total).
func TestAlertRulesReadSeriesTheStackExports(t *testing.T) {
	sels, recorded := selectors(t, rulesFile)

	l := gate.DefaultLaunch()
	l.BreakerFailures, l.BreakerOpen = 1, time.Minute
	s := startStack(t, options{launch: l, fb: fakebinder.Config{FailSpecs: "gh/broken/", BuildTime: 1500 * time.Millisecond}})
	seen := exposed{}
	scrapeAll := func() {
		t.Helper()
		for _, u := range []string{s.binderURL() + "/metrics", s.metricsURL, s.statsURL + "/stats/prometheus"} {
			if err := scrape(s.ctx, u, seen); err != nil {
				t.Fatal(err)
			}
		}
	}

	// A storm held on a building repository, scraped while it is held.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { launch(s.ctx, s.edgeURL, "gh/org/popular/HEAD", 30*time.Second) })
	}
	waitFor(t, 10*time.Second, "launches held at the gate", func() bool {
		return s.gateHits.prefix("/build/gh/org/popular/") == 5
	})
	// The gate publishes its state (and the per-spec gauges) every
	// StateInterval, not on each arrival.
	waitFor(t, 10*time.Second, "the held storm in the gate's per-spec gauge", func() bool {
		return metricOf(s.metricsURL, `binderguard_hot_spec_waiters{spec="gh/org/popular/HEAD"}`) > 0
	})
	scrapeAll()
	wg.Wait()

	// A failed build opens the breaker; the next launch of it is turned away.
	if a := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 20*time.Second); a.final().Phase != sse.PhaseFailed {
		t.Fatalf("launch of a failing repository: %+v %v", a.events, a.err)
	}
	launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 20*time.Second)

	// A ban, answered at the edge.
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second); a.final().StatusCode != 403 {
		t.Fatalf("banned launch: %+v %v", a.events, a.err)
	}

	// A config Envoy rejects (NACK).
	s.publishUncompilableRoute()
	scrapeAll()

	for _, sel := range sels {
		if why, ok := otherExporters[sel.name]; ok {
			t.Logf("rule %s reads %s: not checked, it comes from %s", sel.rule, sel.name, why)
			continue
		}
		if recorded[sel.name] {
			continue
		}
		if !seen.has(sel) {
			t.Errorf("rule %s reads %s, which no scraped target exports; exported names like it: %v",
				sel.rule, sel, namesLike(seen, sel.name))
		}
	}
}

func (s selector) String() string {
	var ms []string
	for _, k := range slices.Sorted(maps.Keys(s.equal)) {
		ms = append(ms, fmt.Sprintf("%s=%q", k, s.equal[k]))
	}
	return s.name + "{" + strings.Join(ms, ",") + "}"
}

// namesLike lists up to 10 exported names sharing name's first two words,
// to make a misspelling obvious.
func namesLike(e exposed, name string) []string {
	words := strings.SplitN(name, "_", 3)
	prefix := strings.Join(words[:min(2, len(words))], "_")
	var out []string
	for _, n := range slices.Sorted(maps.Keys(e)) {
		if strings.HasPrefix(n, prefix) && len(out) < 10 {
			out = append(out, n)
		}
	}
	return out
}
