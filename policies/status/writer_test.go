package status_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/status"
	"github.com/binderguard/binderguard/test/testenv"
)

// write lists the namespace's policies from the API server, validates them
// as a source would, and runs the writer over the result.
func write(t *testing.T, c client.Client, w *status.Writer, ns string) int {
	t.Helper()
	ctx := context.Background()
	var bans v1alpha1.RepoBanList
	var lps v1alpha1.LaunchPolicyList
	if err := c.List(ctx, &bans, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &lps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	snap, _ := snapshot.New(bans.Items, lps.Items)
	n, err := w.Write(ctx, bans.Items, lps.Items, snap.Status())
	if err != nil {
		t.Fatalf("write status: %v", err)
	}
	return n
}

func accepted(t *testing.T, c client.Client, obj client.Object) (*metav1.Condition, int64) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	var pc v1alpha1.PolicyConditions
	switch o := obj.(type) {
	case *v1alpha1.RepoBan:
		pc = o.Status.PolicyConditions
	case *v1alpha1.LaunchPolicy:
		pc = o.Status.PolicyConditions
	}
	return meta.FindStatusCondition(pc.Conditions, v1alpha1.ConditionAccepted), pc.ObservedGeneration
}

func TestWriterSetsAcceptedOnlyWhenItChanges(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	c := env.Client
	ctx := context.Background()
	w, err := status.NewWriter(status.Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}

	good := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "good"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/org/repo"}}}
	bad := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"zenodo/notadoi"}}}
	lp := &v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"}}
	for _, o := range []client.Object{good, bad, lp} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	// The webhook owns matchedPods; the writer must leave it alone.
	good.Status.MatchedPods = []v1alpha1.MatchedPod{{Namespace: ns, Name: "build-x", Role: v1alpha1.PodRoleBuild, Action: v1alpha1.PodActionReported}}
	good.Status.MatchedPodCount = 1
	if err := c.Status().Update(ctx, good); err != nil {
		t.Fatalf("set matchedPods: %v", err)
	}

	if n := write(t, c, w, ns); n != 3 {
		t.Errorf("first write touched %d objects, want 3", n)
	}
	if cond, gen := accepted(t, c, good); cond == nil || cond.Status != metav1.ConditionTrue || gen != 1 {
		t.Errorf("valid RepoBan: Accepted %+v observedGeneration %d, want True at generation 1", cond, gen)
	}
	if len(good.Status.MatchedPods) != 1 || good.Status.MatchedPodCount != 1 {
		t.Errorf("writer dropped the webhook's matchedPods: %+v", good.Status)
	}
	if cond, _ := accepted(t, c, bad); cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonInvalid ||
		!strings.Contains(cond.Message, "spec.repos[0]") {
		t.Errorf("unusable RepoBan: Accepted %+v, want False/Invalid naming spec.repos[0]", cond)
	}
	if cond, _ := accepted(t, c, lp); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("LaunchPolicy: Accepted %+v, want True", cond)
	}

	rv := good.ResourceVersion
	if n := write(t, c, w, ns); n != 0 {
		t.Errorf("second write with nothing changed touched %d objects, want 0", n)
	}
	if accepted(t, c, good); good.ResourceVersion != rv {
		t.Errorf("unchanged status was written: resourceVersion %s -> %s", rv, good.ResourceVersion)
	}

	// Fixing the bad ban makes it accepted at its new generation.
	bad.Spec.Repos = []v1alpha1.RepoRef{"zenodo/10.5281/zenodo.3242074"}
	if err := c.Update(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if n := write(t, c, w, ns); n != 1 {
		t.Errorf("write after fixing one object touched %d, want 1", n)
	}
	if cond, gen := accepted(t, c, bad); cond == nil || cond.Status != metav1.ConditionTrue || gen != 2 || cond.ObservedGeneration != 2 {
		t.Errorf("fixed RepoBan: Accepted %+v observedGeneration %d, want True at generation 2", cond, gen)
	}
}

func TestWriterSkipsAResultForAnOlderGeneration(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	w, _ := status.NewWriter(status.Config{Client: env.Client})
	ban := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/org/repo"}}}
	if err := env.Client.Create(ctx, ban); err != nil {
		t.Fatal(err)
	}
	stale := snapshot.ObjectStatus{Kind: v1alpha1.KindRepoBan, Namespace: ns, Name: "b", Generation: ban.Generation - 1}
	n, err := w.Write(ctx, []v1alpha1.RepoBan{*ban}, nil, []snapshot.ObjectStatus{stale})
	if err != nil || n != 0 {
		t.Fatalf("write of a stale result: wrote %d, err %v; want nothing written", n, err)
	}
}

// TestSourceAndWriterTogether wires the writer into the kube source the
// way binderguard serve does: through a Relay, a leader-only runnable.
func TestSourceAndWriterTogether(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	w, err := status.NewWriter(status.Config{Client: env.Client})
	if err != nil {
		t.Fatal(err)
	}
	relay := status.NewRelay(w, nil)
	if !relay.NeedLeaderElection() {
		t.Fatal("the status relay runs on every replica; want the leader only")
	}
	wg.Go(func() {
		if err := relay.Start(ctx); err != nil {
			t.Errorf("status relay: %v", err)
		}
	})
	env.StartPolicySource(t, ns, relay.Offer)

	bad := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"zenodo/notadoi"}}}
	if err := env.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // deadlock guard, not a latency bound
	for {
		if cond, gen := accepted(t, env.Client, bad); cond != nil && gen == 1 {
			if cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonInvalid {
				t.Fatalf("Accepted %+v, want False/Invalid", cond)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("status never written through the kube source")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
