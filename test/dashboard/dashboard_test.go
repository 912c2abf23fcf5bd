package dashboard

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/webhook/admission"
)

const dashboardFile = "../../manifests/dashboards/binderguard.json"

// panelQuery is one target of one panel in the dashboard JSON.
type panelQuery struct {
	panel, refID, expr, legend string
}

// mayBeEmpty lists the queries that cannot have data in this test, each
// with the reason; every other query must. Keyed "<panel title>/<refId>".
func mayBeEmpty() map[string]string {
	return map[string]string{
		"Binder pod CPU/A": "cAdvisor's container_cpu_usage_seconds_total and kube-state-metrics' limits exist only in a Kubernetes cluster; " +
			"the test cluster (test/cluster) is the place to see them",
		"Fail-open fallback launches/A": "a fallback needs the gate down while Envoy runs; `binderguard local` runs the gate in its own process, " +
			"so it cannot be stopped alone here (test/e2e TestGateKilledMidStormFallsBackToBinder checks the class=\"\" series this counts)",
	}
}

// loadQueries reads every target of every panel, rows' nested panels too.
func loadQueries(t *testing.T) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatalf("reading the dashboard: %v", err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID  string `json:"refId"`
			Expr   string `json:"expr"`
			Legend string `json:"legendFormat"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decoding the dashboard: %v", err)
	}
	var out []panelQuery
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("decoding a panel: %v", err)
			}
			for _, q := range p.Targets {
				out = append(out, panelQuery{panel: p.Title, refID: q.RefID, expr: q.Expr, legend: q.Legend})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// substitute does what Grafana does to an expression before sending it:
// the namespace variable set to All (".*") and $__rate_interval.
func substitute(expr string) string {
	return strings.NewReplacer(`$namespace`, `.*`, `$__rate_interval`, rateInterval).Replace(expr)
}

// storm drives what an operator would watch: a storm of launches of one
// building repository, a banned launch, a failed build that opens its
// breaker and a launch refused by it, and admission reviews.
func storm(t *testing.T, s *stack) {
	t.Helper()
	var wg sync.WaitGroup
	results := make(chan sse.Payload, 40)
	for range cap(results) { // arriving over two seconds, as users do
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- launch(s.edgeURL, "gh/storm/repo/HEAD", 30*time.Second)
		}()
		time.Sleep(50 * time.Millisecond)
	}
	for range 5 {
		if p := launch(s.edgeURL, "gh/banned/repo/HEAD", 5*time.Second); p.Phase != sse.PhaseFailed {
			t.Errorf("banned launch ended with %+v, want failed", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p := launch(s.edgeURL, "gh/fail/repo/HEAD", 20*time.Second); p.Phase != sse.PhaseFailed {
		t.Errorf("launch of a failing build ended with %+v, want failed", p)
	}
	for range 3 { // refused by the open breaker: at the gate, then at the edge once pushed
		if p := launch(s.edgeURL, "gh/fail/repo/HEAD", 5*time.Second); p.Phase != sse.PhaseFailed {
			t.Errorf("launch with the breaker open ended with %+v, want failed", p)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, path := range []string{"/", "/versions", "/no/such/page"} { // BinderHub's pages, through Envoy's binder cluster
		if err := get(s.edgeURL + path); err != nil {
			t.Error(err)
		}
	}
	// Reviews over a few scrapes, so their counters rise between samples.
	for range 4 {
		for _, r := range []struct{ path, body string }{
			{admission.MutatePath, reviewJSON("allowed", "https://github.com/storm/repo")},
			{admission.ValidatePath, reviewJSON("allowed", "https://github.com/storm/repo")},
			{admission.ValidatePath, reviewJSON("banned", "https://github.com/banned/repo")},
		} {
			if err := s.review(r.path, r.body); err != nil {
				t.Error(err)
			}
		}
		time.Sleep(scrapeInterval)
	}
	wg.Wait()
	close(results)
	for p := range results {
		if p.Phase != sse.PhaseReady {
			t.Errorf("a held launch of the storm ended with %+v, want ready", p)
		}
	}
}

// reviewJSON is an AdmissionReview of a BinderHub build pod for repo.
func reviewJSON(uid, repo string) string {
	return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
"uid":%q,"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
"namespace":"binder","operation":"CREATE","userInfo":{"username":"system:serviceaccount:binder:binder"},
"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"build-x","namespace":"binder",
"labels":{"component":"binderhub-build"},"annotations":{"binder-repo":%q}},
"spec":{"containers":[{"name":"builder","image":"r2d","args":["jupyter-repo2docker","--ref=abc",%q]}]}}}}`, uid, repo, repo)
}

// renamedCounter finds BinderHub counters in expr under the name BinderHub
// exports (prometheus_client appends _total).
var renamedCounter = regexp.MustCompile(`binderhub_[a-z_]+_count_total`)

// Every panel's every query returns data from a real Prometheus that
// scraped a real Envoy, binderguard and the simulator through a storm,
// except the allow-listed ones, which must stay empty for their reason.
func TestEveryPanelHasDataDuringAStorm(t *testing.T) {
	queries := loadQueries(t)
	allowed := mayBeEmpty()
	s := startStack(t, fakebinder.Config{
		BuildTime:  5 * time.Second,
		LaunchTime: 50 * time.Millisecond,
		ReadyHold:  10 * time.Millisecond,
		BuiltSpecs: "gh/warm/",
		FailSpecs:  "gh/fail/",
	})
	p := startPrometheus(t, s.targets)
	p.waitScraped(t, 4)
	from := time.Now()
	storm(t, s)
	time.Sleep(3 * scrapeInterval) // the last samples of the storm
	to := time.Now()

	seen := map[string]bool{}
	for _, q := range queries {
		key := q.panel + "/" + q.refID
		seen[key] = true
		expr := substitute(q.expr)
		got, at, err := p.latestData(expr, from, to)
		if err != nil {
			t.Errorf("panel %q query %s: %v", q.panel, q.refID, err)
			continue
		}
		reason, isAllowed := allowed[key]
		switch {
		case len(got) > 0 && isAllowed:
			t.Errorf("panel %q query %s is allow-listed as empty (%s) but has data: %v; remove it from mayBeEmpty", q.panel, q.refID, reason, got)
		case len(got) > 0:
			t.Logf("panel %q query %s: %d series at %s, e.g. %v", q.panel, q.refID, len(got), at.Format(time.TimeOnly), got[0])
		case isAllowed:
			t.Logf("panel %q query %s: empty as expected: %s", q.panel, q.refID, reason)
		default:
			t.Errorf("panel %q query %s returned no data: %s%s", q.panel, q.refID, expr, oldNames(p, expr, from, to))
		}
	}
	for key := range allowed {
		if !seen[key] {
			t.Errorf("mayBeEmpty names %q, which is not a query of the dashboard", key)
		}
	}
	if *render != "" {
		if err := renderPanels(p, queries, from, to, *render); err != nil {
			t.Errorf("rendering the panels: %v", err)
		}
		t.Logf("panels rendered to %s", *render)
	}
}

// oldNames explains a BinderHub panel without data when the simulator
// still exports BinderHub's counters without prometheus_client's _total.
func oldNames(p *prom, expr string, from, to time.Time) string {
	var msg []string
	for _, name := range renamedCounter.FindAllString(expr, -1) {
		old := strings.TrimSuffix(name, "_total")
		if got, _, err := p.latestData("count("+old+")", from, to); err == nil && len(got) > 0 {
			msg = append(msg, fmt.Sprintf("the simulator exports %s, but BinderHub (prometheus_client) exports %s: test/fakebinder/metrics.go must use BinderHub's real name", old, name))
		}
	}
	if len(msg) == 0 {
		return ""
	}
	return "\n    " + strings.Join(msg, "\n    ")
}
