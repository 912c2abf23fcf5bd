package snapshot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/spec"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func ban(name string, mut func(*v1alpha1.RepoBanSpec)) v1alpha1.RepoBan {
	rb := v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: name},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"}}}
	if mut != nil {
		mut(&rb.Spec)
	}
	return rb
}

func policy(name string, mut func(*v1alpha1.LaunchPolicySpec)) v1alpha1.LaunchPolicy {
	lp := v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: name}}
	if mut != nil {
		mut(&lp.Spec)
	}
	return lp
}

func i32(v int32) *int32                   { return &v }
func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
func qty(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func mustSpec(t *testing.T, s string) spec.Spec {
	t.Helper()
	sp, err := spec.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestNoPoliciesMeansDefaultsAndNoBans(t *testing.T) {
	s := Empty()
	if _, ok := s.Ban(mustSpec(t, "gh/o/r/HEAD"), t0); ok {
		t.Error("empty snapshot bans")
	}
	l := s.Launch(mustSpec(t, "gh/o/r/HEAD"))
	want := DefaultLaunch()
	if l.Policy != "default" || !l.Collapse.Enabled || l.Collapse.MaxWaiters != 2000 || l.Collapse.HoldTimeout != 30*time.Minute ||
		l.Collapse.ReleaseRate != 20 || l.Collapse.ReleaseBurst != 20 || l.Breaker != want.Breaker ||
		l.Breaker.ConsecutiveFailures != 3 || l.Breaker.OpenDuration != 5*time.Minute || l.Breaker.MaxBuildDuration != time.Hour ||
		len(l.Build.Resources.Limits) != 0 {
		t.Errorf("defaults = %+v", l)
	}
	if g := s.Global(); g.MaxConcurrentTotal != 5000 || g.MaxWaitersTotal != 20000 {
		t.Errorf("global defaults = %+v", g)
	}
}

func TestBansApplyUntilTheyExpire(t *testing.T) {
	exp := metav1.NewTime(t0.Add(time.Hour))
	s, errs := New([]v1alpha1.RepoBan{
		ban("demo", func(b *v1alpha1.RepoBanSpec) { b.Expires = &exp; b.Message = "rebuilding" }),
		ban("forever", func(b *v1alpha1.RepoBanSpec) {
			b.Repos = nil
			b.Patterns = []v1alpha1.SpecPattern{{Regex: "^ines/spacy-binder.*", Provider: "gh"}}
		}),
	}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tests := map[string]struct {
		spec   string
		now    time.Time
		policy string
	}{
		"the banned repository before expiry": {"git/https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/HEAD", t0, "RepoBan/binder/demo"},
		"the banned repository after expiry":  {"gh/jupyterlab/jupyterlab-demo/HEAD", t0.Add(time.Hour), ""},
		"a pattern ban":                       {"gh/ines/spacy-binder/HEAD", t0.Add(48 * time.Hour), "RepoBan/binder/forever"},
		"a fork":                              {"gh/me/jupyterlab-demo/HEAD", t0, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			hit, ok := s.Ban(mustSpec(t, tc.spec), tc.now)
			if got := map[bool]string{true: hit.Policy}[ok]; got != tc.policy {
				t.Errorf("Ban(%q) = %q, want %q", tc.spec, got, tc.policy)
			}
		})
	}
	if got := s.NextExpiry(t0); !got.Equal(exp.Time) {
		t.Errorf("NextExpiry = %v, want %v", got, exp.Time)
	}
	if got := s.NextExpiry(t0.Add(time.Hour)); !got.IsZero() {
		t.Errorf("NextExpiry after the last expiry = %v, want zero", got)
	}
	if n := len(s.Bans(t0)); n != 2 {
		t.Errorf("Bans(before) has %d, want 2", n)
	}
	active := s.Bans(t0.Add(time.Hour))
	if len(active) != 1 || active[0].Policy != "RepoBan/binder/forever" {
		t.Errorf("Bans(after) = %+v", active)
	}
	b := s.Bans(t0)[0]
	if want := "/build/gh/jupyterlab/jupyterlab-demo/"; len(b.Prefixes) == 0 || !contains(b.Prefixes, want) {
		t.Errorf("Prefixes = %v, want %s among them", b.Prefixes, want)
	}
	if hit, _ := s.BanRepo("github.com/jupyterlab/jupyterlab-demo", t0); hit.Message != "rebuilding" {
		t.Errorf("BanRepo message = %q", hit.Message)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestLaunchResolvesTheWinnerOverDefaults(t *testing.T) {
	limits := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("2Gi")}
	s, errs := New(nil, []v1alpha1.LaunchPolicy{
		policy("site", func(p *v1alpha1.LaunchPolicySpec) {
			p.Shed = &v1alpha1.ShedSpec{MaxWaitersTotal: i32(10000), MaxConcurrentTotal: i32(3000)}
			p.Build = &v1alpha1.BuildSpec{Resources: &corev1.ResourceRequirements{Limits: limits}}
		}),
		policy("popular", func(p *v1alpha1.LaunchPolicySpec) {
			p.Selector.Repos = []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"}
			p.Collapse = &v1alpha1.CollapseSpec{MaxWaiters: i32(500), ReleaseRate: qty("500m")}
			p.Breaker = &v1alpha1.BreakerSpec{MaxBuildDuration: dur(20 * time.Minute)}
			p.Shed = &v1alpha1.ShedSpec{MaxConcurrentTotal: i32(4000)}
			p.StaleWhileBuilding = &v1alpha1.StaleWhileBuildingSpec{Enabled: ptr(true)}
		}),
		policy("dry-run", func(p *v1alpha1.LaunchPolicySpec) {
			p.Mode = v1alpha1.ModeAudit
			p.Selector.Patterns = []v1alpha1.SpecPattern{{Regex: "^binder-examples/"}}
			p.Shed = &v1alpha1.ShedSpec{MaxWaitersTotal: i32(1)}
		}),
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pop := s.Launch(mustSpec(t, "gh/JupyterLab/jupyterlab-demo/main"))
	if pop.Policy != "LaunchPolicy/binder/popular" || pop.Collapse.MaxWaiters != 500 || pop.Collapse.ReleaseRate != 0.5 ||
		pop.Collapse.ReleaseBurst != DefaultReleaseBurst || pop.Breaker.MaxBuildDuration != 20*time.Minute ||
		pop.Breaker.ConsecutiveFailures != DefaultConsecutiveFailures || !pop.Collapse.Enabled {
		t.Errorf("popular = %+v", pop)
	}
	if !pop.Stale.Enabled || pop.Stale.MaxAge != DefaultStaleMaxAge {
		t.Errorf("popular stale = %+v, want enabled with the default maxAge", pop.Stale)
	}
	if len(pop.Build.Resources.Limits) != 0 {
		t.Errorf("settings must not merge from the site policy: %+v", pop.Build)
	}
	site := s.Launch(mustSpec(t, "gh/someone/else/HEAD"))
	if site.Policy != "LaunchPolicy/binder/site" || !site.Build.Resources.Limits.Cpu().Equal(resource.MustParse("1")) || site.Stale.Enabled {
		t.Errorf("site = %+v", site)
	}
	if dry := s.Launch(mustSpec(t, "gh/binder-examples/conda/HEAD")); dry.Mode != match.ModeAudit {
		t.Errorf("dry-run mode = %q", dry.Mode)
	}
	if g := s.Global(); g.MaxWaitersTotal != 10000 || g.MaxConcurrentTotal != 3000 {
		t.Errorf("Global = %+v, want the smallest Enforce caps (10000, 3000)", g)
	}
	if l := s.LaunchRepo("github.com/jupyterlab/jupyterlab-demo"); l.Policy != "LaunchPolicy/binder/popular" {
		t.Errorf("LaunchRepo = %s", l.Policy)
	}
}

func TestInvalidObjectsAreLeftOutAndNamed(t *testing.T) {
	tests := map[string]struct {
		ban    *v1alpha1.RepoBan
		policy *v1alpha1.LaunchPolicy
		field  string // expected in the error
	}{
		"a ban with neither repos nor patterns": {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Repos = nil })), field: "spec"},
		"a ban on an unparseable repository":    {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Repos = []v1alpha1.RepoRef{"gh/%2F%2F"} })), field: "spec.repos[0]"},
		"a ban on a URL instead of a spec":      {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Repos = []v1alpha1.RepoRef{"https://github.com/o/r"} })), field: "spec.repos[0]"},
		"a duplicate repository":                {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Repos = append(b.Repos, b.Repos[0]) })), field: "spec.repos[1]"},
		"a Python-only regex": {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) {
			b.Patterns = []v1alpha1.SpecPattern{{Regex: `^(?!myorg\/.*).*$`}}
		})), field: "spec.patterns[0].regex"},
		"Python's \\Z, which the API server's RE2 check refuses": {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) {
			b.Patterns = []v1alpha1.SpecPattern{{Regex: `^o/r\Z`}}
		})), field: "spec.patterns[0].regex"},
		"an unknown provider": {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) {
			b.Patterns = []v1alpha1.SpecPattern{{Regex: "x", Provider: "bitbucket"}}
		})), field: "spec.patterns[0].provider"},
		"an unknown mode":                   {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Mode = "Block" })), field: "spec.mode"},
		"delete existing pods in warn mode": {ban: ptr(ban("b", func(b *v1alpha1.RepoBanSpec) { b.Mode = "Warn"; b.OnExisting = "Delete" })), field: "spec.onExisting"},
		"a ban without a name":              {ban: ptr(ban("", nil)), field: "metadata.name"},
		"a zero hold timeout": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Collapse = &v1alpha1.CollapseSpec{HoldTimeout: dur(0)}
		})), field: "spec.collapse.holdTimeout"},
		"a negative release rate": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Collapse = &v1alpha1.CollapseSpec{ReleaseRate: qty("-1")}
		})), field: "spec.collapse.releaseRate"},
		"a burst without a rate": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Collapse = &v1alpha1.CollapseSpec{ReleaseBurst: i32(5)}
		})), field: "spec.collapse.releaseRate"},
		"zero waiters": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Collapse = &v1alpha1.CollapseSpec{MaxWaiters: i32(0)}
		})), field: "spec.collapse.maxWaiters"},
		"more waiters per spec than in total": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Collapse = &v1alpha1.CollapseSpec{MaxWaiters: i32(10)}
			p.Shed = &v1alpha1.ShedSpec{MaxWaitersTotal: i32(5)}
		})), field: "spec.collapse.maxWaiters"},
		"a limit below its request": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Build = &v1alpha1.BuildSpec{Resources: &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			}}
		})), field: "spec.build.resources.limits[memory]"},
		"a client IP rate on a policy with a selector": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Selector.Repos = []v1alpha1.RepoRef{"gh/o/r"}
			p.Shed = &v1alpha1.ShedSpec{ClientIPRate: qty("1")}
		})), field: "spec.shed.clientIPRate"},
		"a zero stale maxAge": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.StaleWhileBuilding = &v1alpha1.StaleWhileBuildingSpec{Enabled: ptr(true), MaxAge: dur(0)}
		})), field: "spec.staleWhileBuilding.maxAge"},
		"a priority out of range": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) { p.Priority = 5000 })), field: "spec.priority"},
		"a selector regex that does not compile": {policy: ptr(policy("p", func(p *v1alpha1.LaunchPolicySpec) {
			p.Selector.Patterns = []v1alpha1.SpecPattern{{Regex: "(unclosed"}}
		})), field: "spec.selector.patterns[0].regex"},
	}
	good := ban("good", nil)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			bans := []v1alpha1.RepoBan{good}
			var pols []v1alpha1.LaunchPolicy
			if tc.ban != nil {
				bans = append(bans, *tc.ban)
			}
			if tc.policy != nil {
				pols = append(pols, *tc.policy)
			}
			s, errs := New(bans, pols)
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want exactly one", errs)
			}
			var oe *ObjectError
			if !errors.As(errs[0], &oe) || !strings.Contains(oe.Error(), tc.field) {
				t.Fatalf("error = %v, want an *ObjectError naming %s", errs[0], tc.field)
			}
			if !strings.HasPrefix(oe.Error(), oe.Ref()+": ") {
				t.Errorf("error %q does not start with the object %s", oe.Error(), oe.Ref())
			}
			if _, ok := s.Ban(mustSpec(t, "gh/jupyterlab/jupyterlab-demo/HEAD"), t0); !ok {
				t.Error("the valid ban was dropped with the invalid object")
			}
			if l := s.Launch(mustSpec(t, "gh/o/r/HEAD")); l.Policy != DefaultPolicyName {
				t.Errorf("an invalid policy applies: %s", l.Policy)
			}
			rejected := 0
			for _, st := range s.Status() {
				if st.Err != nil {
					rejected++
				}
			}
			if rejected != 1 || len(s.Status()) != len(bans)+len(pols) {
				t.Errorf("Status = %+v", s.Status())
			}
		})
	}
}

// A ban fails closed: entries binderguard cannot use (the API server lets
// them through) are left out and the rest of the ban stays in force, so a
// bad line added to a ban never lifts it. An object-level error still
// leaves the whole object out.
func TestABanKeepsItsUsableEntries(t *testing.T) {
	withBad := func(mut func(*v1alpha1.RepoBanSpec)) v1alpha1.RepoBan {
		return ban("b", func(b *v1alpha1.RepoBanSpec) {
			b.Repos = []v1alpha1.RepoRef{"gh/bad/miner", "zenodo/notadoi"}
			if mut != nil {
				mut(b)
			}
		})
	}
	tests := map[string]struct {
		ban         v1alpha1.RepoBan
		wantBanned  bool // gh/bad/miner
		wantPartial bool
	}{
		"a repository it cannot parse beside a good one": {ban: withBad(nil), wantBanned: true, wantPartial: true},
		"a regex its engine refuses beside a good repository": {ban: ban("b", func(b *v1alpha1.RepoBanSpec) {
			b.Repos = []v1alpha1.RepoRef{"gh/bad/miner"}
			b.Patterns = []v1alpha1.SpecPattern{{Regex: `^(?!myorg\/.*).*$`}}
		}), wantBanned: true, wantPartial: true},
		"nothing usable left":           {ban: ban("b", func(b *v1alpha1.RepoBanSpec) { b.Repos = []v1alpha1.RepoRef{"zenodo/notadoi"} })},
		"an error of the object itself": {ban: withBad(func(b *v1alpha1.RepoBanSpec) { b.Mode = "Block" })},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, errs := New([]v1alpha1.RepoBan{tc.ban}, nil)
			if len(errs) != 1 {
				t.Fatalf("errors = %v, want one naming the bad entry or field", errs)
			}
			if _, ok := s.Ban(mustSpec(t, "gh/bad/miner/HEAD"), t0); ok != tc.wantBanned {
				t.Errorf("gh/bad/miner banned = %v, want %v", ok, tc.wantBanned)
			}
			if st := s.Status(); len(st) != 1 || st[0].Err == nil || st[0].Partial != tc.wantPartial {
				t.Errorf("Status = %+v, want the error, partial %v", st, tc.wantPartial)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// newValid is New for bans the test means to be valid: an invalid one
// would be dropped and could make a version comparison pass vacuously.
func newValid(t *testing.T, bans ...v1alpha1.RepoBan) *Snapshot {
	t.Helper()
	s, errs := New(bans, nil)
	if len(errs) > 0 {
		t.Fatalf("New: %v", errs)
	}
	return s
}

func TestVersionIsAContentHash(t *testing.T) {
	a, b := ban("a", nil), ban("b", func(s *v1alpha1.RepoBanSpec) { s.Repos = []v1alpha1.RepoRef{"gh/o/r"} })
	v1 := newValid(t, a, b)
	v2 := newValid(t, b, a)
	if v1.Version != v2.Version {
		t.Errorf("order changed the version: %s vs %s", v1.Version, v2.Version)
	}
	// another spelling of the same repository is the same policy
	a2 := ban("a", func(s *v1alpha1.RepoBanSpec) { s.Repos = []v1alpha1.RepoRef{"gh/JupyterLab/jupyterlab-demo.git"} })
	if v3 := newValid(t, a2, b); v3.Version != v1.Version {
		t.Errorf("a respelling changed the version")
	}
	c := ban("a", func(s *v1alpha1.RepoBanSpec) { s.Message = "changed" })
	if v4 := newValid(t, c, b); v4.Version == v1.Version {
		t.Errorf("a changed message kept the version")
	}
	if Empty().Version == v1.Version || Empty().Version != Empty().Version {
		t.Error("empty version is not stable or collides")
	}
}

func TestStoreSubscribersSeeTheLatest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := NewStore(nil)
	ch := st.Subscribe(ctx)
	if got := <-ch; got != st.Load() {
		t.Fatal("first value is not the current snapshot")
	}
	s1 := newValid(t, ban("a", nil))
	s2 := newValid(t, ban("b", nil))
	if !st.Store(s1) || !st.Store(s2) {
		t.Fatal("Store of a new version reported no change")
	}
	if got := <-ch; got != s2 {
		t.Errorf("coalesced value = %s, want the latest %s", got.Version, s2.Version)
	}
	same := newValid(t, ban("b", nil))
	if st.Store(same) {
		t.Error("Store of the same version reported a change")
	}
	select {
	case got := <-ch:
		t.Errorf("a no-op Store notified: %s", got.Version)
	default:
	}
	cancel()
	if _, open := <-ch; open {
		t.Error("channel not closed after ctx ended")
	}
	st.Store(s1) // must not panic on the closed subscription
}

// Run with -race: stores, loads and subscriptions from many goroutines.
func TestStoreIsSafeForConcurrentUse(t *testing.T) {
	st := NewStore(nil)
	snaps := make([]*Snapshot, 8)
	for i := range snaps {
		snaps[i] = newValid(t, ban(string(rune('a'+i)), nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			sub := st.Subscribe(ctx)
			for i := range 200 {
				st.Store(snaps[(i+w)%len(snaps)])
				_ = st.Load().Version
				select {
				case s := <-sub:
					if s == nil {
						t.Error("nil snapshot delivered")
					}
				default:
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	last := snaps[3]
	st.Store(last)
	ch := st.Subscribe(ctx)
	if got := <-ch; got != st.Load() {
		t.Error("a new subscriber did not get the latest snapshot first")
	}
}
