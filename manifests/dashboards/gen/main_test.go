package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

const committed = "../binderguard.json"

// The committed dashboard is exactly what this generator writes: a hand
// edit of the JSON, or a change here without `make dashboards`, fails.
func TestCommittedDashboardMatchesGenerator(t *testing.T) {
	want, err := dashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("reading the committed dashboard: %v (run `make dashboards`)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s drifted from the generator at line %d:\n committed: %s\n generated: %s\nrun `make dashboards` and commit the result", committed, i+1, g, w)
			}
		}
	}
}

// Every query reads the datasource variable and filters every selector on
// the namespace variable, so the dashboard works for any install.
func TestEveryQueryUsesTheVariables(t *testing.T) {
	b, err := dashboardJSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	queries := 0
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			queries++
			if q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query uses datasource %q, want ${datasource}", p.Title, q.Datasource.UID)
			}
			if n, m := strings.Count(q.Expr, "{"), strings.Count(q.Expr, `{namespace=~"$namespace"`); n != m {
				t.Errorf("panel %q: %d of %d selectors in %s lack the namespace variable", p.Title, n-m, n, q.Expr)
			}
		}
	}
	if queries == 0 {
		t.Fatal("no queries found in the dashboard JSON")
	}
}

// The JSON reads back into the SDK's Grafana schema types with every panel
// and query typed (not left as raw maps): what Grafana's importer expects.
func TestDashboardReadsBackIntoGrafanaTypes(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	b, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the committed dashboard does not decode as a Grafana dashboard: %v", err)
	}
	panels := 0
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		panels++
		for _, q := range p.Panel.Targets {
			if _, ok := q.(*prometheus.Dataquery); !ok {
				t.Errorf("panel %q: a query decodes as %T, want a Prometheus query", deref(p.Panel.Title), q)
			}
		}
	}
	if panels == 0 {
		t.Fatal("no panels decoded")
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
