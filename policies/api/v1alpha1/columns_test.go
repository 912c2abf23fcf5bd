package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/test/testenv"
)

// cells is the one row's cells of what `kubectl get <resource>` shows.
func cells(t *testing.T, env *testenv.Env, ns, resource string) map[string]string {
	t.Helper()
	rows := testenv.Cells(env.Table(t, ns, resource))
	if len(rows) != 1 {
		t.Fatalf("table has %d rows, want 1: %v", len(rows), rows)
	}
	for _, r := range rows {
		return r
	}
	return nil
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
		got := cells(t, env, ns, "repobans")
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

	t.Run("kubectl get repobans shows the launches it blocked and the pods it refused", func(t *testing.T) {
		ns := env.Namespace(t)
		ban := repoBan(nil)
		ban.Namespace, ban.Name = ns, "counted"
		if err := env.Client.Create(ctx, ban); err != nil {
			t.Fatal(err)
		}
		// Every replica adds its counts through the status subresource.
		ban.Status.BlockedLaunches, ban.Status.RefusedPods = 1234, 56
		if err := env.Client.Status().Update(ctx, ban); err != nil {
			t.Fatalf("report counters: %v", err)
		}
		got := cells(t, env, ns, "repobans")
		for col, want := range map[string]string{"Blocked": "1234", "Refused": "56"} {
			if got[col] != want {
				t.Errorf("column %s = %q, want %q (row %v)", col, got[col], want, got)
			}
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
		got := cells(t, env, ns, "launchpolicies")
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
