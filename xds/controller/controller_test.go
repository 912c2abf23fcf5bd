package controller

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/xds/ir"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func ban(name string, mut func(*v1alpha1.RepoBanSpec)) v1alpha1.RepoBan {
	rb := v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: name},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/evil/miner"}, Message: "no mining"}}
	if mut != nil {
		mut(&rb.Spec)
	}
	return rb
}

func snap(t *testing.T, bans ...v1alpha1.RepoBan) *snapshot.Snapshot {
	t.Helper()
	s, errs := snapshot.New(bans, nil)
	if len(errs) > 0 {
		t.Fatalf("snapshot: %v", errs)
	}
	return s
}

func TestBanBlocks(t *testing.T) {
	tests := map[string]struct {
		bans  []v1alpha1.RepoBan
		extra []string
		want  []string // prefixes blocked
	}{
		"no bans block nothing": {},
		"an enforced ban blocks every canonical spelling of the repository": {
			bans: []v1alpha1.RepoBan{ban("a", nil)},
			want: []string{"/build/gh/evil/miner/", "/build/git/https%3A%2F%2Fgithub.com%2Fevil%2Fminer/"},
		},
		"a Warn ban does not block at the edge": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) { s.Mode = v1alpha1.ModeWarn })},
		},
		"an Audit ban does not block at the edge": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) { s.Mode = v1alpha1.ModeAudit })},
		},
		"a prefix pattern blocks under each extra provider": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) {
				s.Repos, s.Patterns = nil, []v1alpha1.SpecPattern{{Regex: "^evil/.*"}, {Regex: ".*xmrig.*"}, {Regex: "^sp%61ce/.*"}}
			})},
			extra: []string{"custom", "other"},
			want:  []string{"/build/custom/evil/", "/build/other/evil/"},
		},
		"a pattern scoped to a built-in provider does not block extra ones": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) {
				s.Repos, s.Patterns = nil, []v1alpha1.SpecPattern{{Regex: "^evil/.*", Provider: v1alpha1.ProviderGitHub}}
			})},
			extra: []string{"custom"},
		},
		"without extra providers, patterns stay with the gate": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) {
				s.Repos, s.Patterns = nil, []v1alpha1.SpecPattern{{Regex: "^evil/.*"}}
			})},
		},
		"an expired ban does not block": {
			bans: []v1alpha1.RepoBan{ban("a", func(s *v1alpha1.RepoBanSpec) { s.Expires = &metav1.Time{Time: t0.Add(-time.Minute)} })},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, b := range BanBlocks(snap(t, tc.bans...), t0, tc.extra) {
				if err := b.Validate(); err != nil {
					t.Errorf("invalid block %+v: %v", b, err)
				}
				if b.Message != "no mining" || b.StatusCode != 403 || b.Source != "RepoBan/binder/a" {
					t.Errorf("block %+v: want the ban's message, 403 and its source", b)
				}
				got = append(got, b.PathPrefix)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("blocked prefixes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHotBlocks(t *testing.T) {
	paths := []string{"/build/gh/a/b/HEAD"}
	tests := map[string]struct {
		hot  gate.HotSpec
		want []ir.Block
	}{
		"a busy spec stays with the gate": {
			hot: gate.HotSpec{Key: "k", Paths: paths, Waiters: 10, MaxWaiters: 100, Breaker: collapse.Closed},
		},
		"an open breaker is answered at the edge until it closes": {
			hot:  gate.HotSpec{Key: "k", Paths: paths, Breaker: collapse.Open, OpenUntil: t0.Add(95 * time.Second)},
			want: []ir.Block{{PathPrefix: paths[0], Class: ir.ClassBreakerOpen, StatusCode: 503, RetryAfter: 100 * time.Second, Source: "gate:k"}},
		},
		"a breaker whose open time has passed is left to the gate": {
			hot: gate.HotSpec{Key: "k", Paths: paths, Breaker: collapse.Open, OpenUntil: t0.Add(-time.Second)},
		},
		"a full waiting room is shed at the edge with a 429": {
			hot:  gate.HotSpec{Key: "k", Paths: paths, Waiters: 100, MaxWaiters: 100, Full: true, Breaker: collapse.Closed},
			want: []ir.Block{{PathPrefix: paths[0], Class: ir.ClassSaturated, StatusCode: 429, RetryAfter: saturatedRetryAfter, Source: "gate:k"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := HotBlocks(gate.State{Hot: []gate.HotSpec{tc.hot}}, t0)
			for i := range got {
				if err := got[i].Validate(); err != nil {
					t.Errorf("invalid block: %v", err)
				}
				got[i].Message = "" // wording is not under test
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("hot blocks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEdgeLaunchAndBreakersFromDefaults(t *testing.T) {
	s := snap(t)
	l := EdgeLaunch(s)
	d := snapshot.DefaultLaunch()
	if want := max(d.Breaker.MaxBuildDuration, d.Collapse.HoldTimeout) + launchMargin; l.MaxStreamDuration != want {
		t.Errorf("max stream duration %v, want %v", l.MaxStreamDuration, want)
	}
	if l.IdleTimeout <= 25*time.Second {
		t.Errorf("idle timeout %v is not above the 25 s keepalive", l.IdleTimeout)
	}
	binder, gateB := EdgeBreakers(s.Global())
	g := s.Global()
	if int(gateB.MaxRequests) < g.MaxWaitersTotal+g.MaxConcurrentTotal {
		t.Errorf("gate breaker %d below the gate's own caps %+v: Envoy would shed before the gate", gateB.MaxRequests, g)
	}
	if int(binder.MaxConnections) < g.MaxConcurrentTotal {
		t.Errorf("binder breaker %d below the concurrent-launch cap %d", binder.MaxConnections, g.MaxConcurrentTotal)
	}
}

func TestControllerEdgePutsBansFirst(t *testing.T) {
	c := New(ir.Edge{Blocks: []ir.Block{{PathPrefix: "/build/ignored/"}}}, nil, nil)
	hot := ir.Block{PathPrefix: "/build/gh/a/b/", Class: ir.ClassSaturated}
	b := ir.Block{PathPrefix: "/build/gh/a/b/", Class: ir.ClassBanned}
	c.SetHot([]ir.Block{hot})
	c.SetBans([]ir.Block{b})
	if diff := cmp.Diff([]ir.Block{b, hot}, c.Edge().Blocks); diff != "" {
		t.Errorf("blocks (-want +got):\n%s", diff)
	}
}

// A ban that expires leaves the edge without a new snapshot: the watcher
// re-applies the latest one at the expiry.
func TestWatchPoliciesDropsExpiredBans(t *testing.T) {
	s := snap(t, ban("a", func(b *v1alpha1.RepoBanSpec) { b.Expires = &metav1.Time{Time: time.Now().Add(300 * time.Millisecond)} }))
	store := snapshot.NewStore(s)
	c := New(ir.Edge{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); WatchPolicies(ctx, store, c) }()

	deadline := time.Now().Add(5 * time.Second)
	for len(c.Edge().Blocks) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("ban never applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for len(c.Edge().Blocks) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired ban still at the edge")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// The snapshot is shared with the gate and the webhook, read without
// locks: BanBlocks must not write into it, not even past a slice's end
// (the extra providers' prefixes were appended to the ban's own Prefixes).
func TestBanBlocksLeavesTheSnapshotAlone(t *testing.T) {
	s := snap(t, ban("a", func(s *v1alpha1.RepoBanSpec) {
		s.Repos = []v1alpha1.RepoRef{"gh/evil/miner", "gh/evil/other", "gh/evil/third"}
		s.Patterns = []v1alpha1.SpecPattern{{Regex: "^evil/.*"}}
	}))
	p := s.Bans(t0)[0].Prefixes
	if cap(p) == len(p) {
		t.Fatalf("the test needs spare capacity in the ban's prefixes (len %d, cap %d)", len(p), cap(p))
	}
	before := append([]string(nil), p[:cap(p)]...)
	BanBlocks(s, t0, []string{"custom"})
	if diff := cmp.Diff(before, p[:cap(p)]); diff != "" {
		t.Errorf("BanBlocks wrote into the snapshot's prefixes (-before +after):\n%s", diff)
	}
}
