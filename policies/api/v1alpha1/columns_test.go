package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	testenv "github.com/binderguard/binderguard/test/envtest"
)

// table fetches what `kubectl get <resource>` shows: the server-side Table.
func table(t *testing.T, env *testenv.Env, ns, resource string) metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/%s", strings.TrimSuffix(env.Config.Host, "/"), v1alpha1.GroupVersion, ns, resource)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("get %s table: %v", resource, err)
	}
	defer resp.Body.Close()
	var tab metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil {
		t.Fatalf("decode %s table: %v", resource, err)
	}
	return tab
}

// cells maps column name to the first row's cell, rendered as kubectl does
// for strings and numbers.
func cells(t *testing.T, tab metav1.Table) map[string]string {
	t.Helper()
	if len(tab.Rows) != 1 {
		t.Fatalf("table has %d rows, want 1", len(tab.Rows))
	}
	out := map[string]string{}
	for i, col := range tab.ColumnDefinitions {
		out[col.Name] = fmt.Sprint(tab.Rows[0].Cells[i])
	}
	return out
}

func TestPrinterColumns(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()

	t.Run("kubectl get repobans shows repos, mode, expires and age", func(t *testing.T) {
		ns := env.Namespace(t)
		ban := repoBan(nil)
		ban.Namespace, ban.Name = ns, "demo"
		ban.Spec.Patterns = []v1alpha1.SpecPattern{{Regex: ".*xmrig.*"}}
		exp := mustTime(t, "2030-01-01T00:00:00Z")
		ban.Spec.Expires = &exp
		if err := env.Client.Create(ctx, ban); err != nil {
			t.Fatal(err)
		}
		got := cells(t, table(t, env, ns, "repobans"))
		for col, want := range map[string]string{
			"Repos":    "gh/jupyterlab/jupyterlab-demo",
			"Patterns": ".*xmrig.*",
			"Mode":     "Enforce",
			"Expires":  "2030-01-01T00:00:00Z",
		} {
			if !strings.Contains(got[col], want) {
				t.Errorf("column %s = %q, want it to show %q (row %v)", col, got[col], want, got)
			}
		}
		if _, ok := got["Age"]; !ok {
			t.Errorf("no Age column: %v", got)
		}
	})

	t.Run("kubectl get launchpolicies shows selector, mode, priority and live waiters", func(t *testing.T) {
		ns := env.Namespace(t)
		lp := launchPolicy(nil)
		lp.Namespace, lp.Name = ns, "hot"
		if err := env.Client.Create(ctx, lp); err != nil {
			t.Fatal(err)
		}
		// The gate reports live counts through the status subresource.
		lp.Status.Waiters = 7
		if err := env.Client.Status().Update(ctx, lp); err != nil {
			t.Fatalf("report waiters: %v", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lp), lp); err != nil {
			t.Fatal(err)
		}
		got := cells(t, table(t, env, ns, "launchpolicies"))
		for col, want := range map[string]string{
			"Selector": "gh/jupyterlab/jupyterlab-demo",
			"Patterns": "^binder-examples/.*",
			"Mode":     "Enforce",
			"Priority": "10",
			"Waiting":  "7",
		} {
			if !strings.Contains(got[col], want) {
				t.Errorf("column %s = %q, want it to show %q (row %v)", col, got[col], want, got)
			}
		}
	})
}

func mustTime(t *testing.T, s string) (tm metav1.Time) {
	t.Helper()
	if err := tm.UnmarshalQueryParameter(s); err != nil {
		t.Fatal(err)
	}
	return tm
}
