package controller

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/server"
)

// bigPolicies is the translation load: 10,000 bans and 1,000
// launch policies.
func bigPolicies() ([]v1alpha1.RepoBan, []v1alpha1.LaunchPolicy) {
	bans := make([]v1alpha1.RepoBan, 10000)
	for i := range bans {
		bans[i] = v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("ban-%d", i)},
			Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/org%d/repo%d", i, i))},
				Message: fmt.Sprintf("repository %d is banned", i)}}
	}
	lps := make([]v1alpha1.LaunchPolicy, 1000)
	for i := range lps {
		lps[i] = v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("lp-%d", i)},
			Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/popular%d/repo", i))}}}}
	}
	return bans, lps
}

func benchEdge() ir.Edge {
	return ir.Edge{
		Listener: ir.Listener{Address: ir.Endpoint{Host: "0.0.0.0", Port: 8080}},
		Binder:   ir.Upstream{Endpoint: ir.Endpoint{Host: "127.0.0.1", Port: 8585}},
		Gate:     ir.Gate{Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: 8081}}},
	}
}

// BenchmarkSnapshotToCache is the control plane's whole path for 10,000
// bans + 1,000 launch policies, from a policy snapshot to a published,
// validated, content-hashed xDS snapshot (target 30 ms: ms/publish), and
// one ban edit with those 10,000 in place (target 1 ms: ms/edit, from the
// controller's new ban list to the published snapshot: translation,
// validation, hashing, cache). snapshot_ms is the policies package
// building the snapshot and apply_ms the controller reducing it to edge
// blocks (both O(bans), reported apart).
func BenchmarkSnapshotToCache(b *testing.B) {
	bans, lps := bigPolicies()
	start := time.Now()
	snap, errs := snapshot.New(bans, lps)
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	snapMS := float64(time.Since(start).Microseconds()) / 1000
	ctx := context.Background()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		// A fresh server and controller each time, or the content hash
		// would skip the push and the controller reuse its translation.
		c := New(benchEdge(), server.New(server.Config{}), nil)
		c.ApplySnapshot(snap, time.Now())
		if err := c.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/publish")
	// CPU time (every thread, GC included) does not depend on what else
	// runs on the machine; ms/publish does.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu_ms/publish")
	b.ReportMetric(snapMS, "snapshot_ms")
	blocks := BanBlocks(snap, time.Now(), nil)
	b.ReportMetric(float64(len(blocks)), "edge_prefixes")

	// Edits: one ban toggled on and off in the middle of the list.
	c := New(benchEdge(), server.New(server.Config{}), nil)
	start = time.Now()
	c.ApplySnapshot(snap, time.Now())
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "apply_ms")
	if err := c.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	with := slices.Insert(slices.Clone(blocks), len(blocks)/2,
		ir.Block{PathPrefix: "/build/gh/new/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "new"})
	lists := [2][]ir.Block{with, blocks}
	const edits = 200
	start = time.Now()
	for i := range edits {
		c.SetBans(lists[i%2])
		if err := c.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/edits, "ms/edit")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
