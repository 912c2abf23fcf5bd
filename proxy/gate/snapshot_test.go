package gate

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
)

func TestSnapshotPoliciesResolveBansKeysAndSettings(t *testing.T) {
	maxW := int32(7)
	on := true
	stale := &v1alpha1.StaleWhileBuildingSpec{Enabled: &on, MaxAge: &metav1.Duration{Duration: 2 * time.Hour}}
	snap, errs := snapshot.New([]v1alpha1.RepoBan{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "miner"},
			Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/evil/miner"}, Message: "mining is not allowed"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "watch"},
			Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/odd/repo"}, Mode: v1alpha1.ModeWarn}},
	}, []v1alpha1.LaunchPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "popular"},
			Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"}},
				Collapse: &v1alpha1.CollapseSpec{MaxWaiters: &maxW}, StaleWhileBuilding: stale}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "trial"},
			Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/trial/repo"}},
				Mode: v1alpha1.ModeAudit, Collapse: &v1alpha1.CollapseSpec{MaxWaiters: &maxW}, StaleWhileBuilding: stale}},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pols := SnapshotPolicies(snapshot.NewStore(snap), nil)
	now := time.Now()
	tests := map[string]struct {
		spec       string
		wantErr    bool
		key        string
		banned     bool
		enforce    bool
		maxWaiters int
		policy     string
		stale      time.Duration // StaleMaxAge when stale launches are on
	}{
		"an enforced ban is found under another spelling": {
			spec: "git/https%3A%2F%2Fgithub.com%2Fevil%2Fminer.git/HEAD", key: "git/https://github.com/evil/miner.git/HEAD", banned: true, enforce: true,
			maxWaiters: snapshot.DefaultMaxWaiters, policy: "default",
		},
		"a warn-mode ban is reported, not enforced": {
			spec: "gh/odd/repo/HEAD", key: "gh/odd/repo/HEAD", banned: true, maxWaiters: snapshot.DefaultMaxWaiters, policy: "default",
		},
		"a launch policy sets the spec's caps": {
			spec: "gh/jupyterlab/jupyterlab-demo/HEAD", key: "gh/jupyterlab/jupyterlab-demo/HEAD", maxWaiters: 7, policy: "LaunchPolicy/binder/popular",
			stale: 2 * time.Hour,
		},
		"an audit-mode launch policy sheds nothing and launches nothing stale": {
			spec: "gh/trial/repo/HEAD", key: "gh/trial/repo/HEAD", maxWaiters: 0, policy: "LaunchPolicy/binder/trial",
		},
		"an unknown provider is an error": {spec: "nope/x/y", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := pols.Resolve(tc.spec, now)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Resolve(%q) = %+v, want an error", tc.spec, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Key != tc.key || (p.Ban != nil) != tc.banned || p.Launch.MaxWaiters != tc.maxWaiters || p.Name != tc.policy {
				t.Errorf("Resolve(%q) = key %q ban %+v maxWaiters %d policy %q", tc.spec, p.Key, p.Ban, p.Launch.MaxWaiters, p.Name)
			}
			if p.Launch.Stale != (tc.stale > 0) || (tc.stale > 0 && p.Launch.StaleMaxAge != tc.stale) {
				t.Errorf("stale %v maxAge %v, want maxAge %v (0: off)", p.Launch.Stale, p.Launch.StaleMaxAge, tc.stale)
			}
			if p.Ban != nil && p.Ban.Enforce != tc.enforce {
				t.Errorf("ban enforce = %v, want %v", p.Ban.Enforce, tc.enforce)
			}
			if !p.Launch.Collapse || p.Global.MaxWaitersTotal != snapshot.DefaultMaxWaitersTotal {
				t.Errorf("collapse %v, global %+v", p.Launch.Collapse, p.Global)
			}
		})
	}
}

func TestSnapshotPoliciesPassExtraProvidersAndBanThemByPattern(t *testing.T) {
	snap, errs := snapshot.New([]v1alpha1.RepoBan{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "miner"},
			Spec: v1alpha1.RepoBanSpec{Patterns: []v1alpha1.SpecPattern{{Regex: "^evil/.*"}}}},
	}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	parser, err := spec.NewParser("custom")
	if err != nil {
		t.Fatal(err)
	}
	pols := SnapshotPolicies(snapshot.NewStore(snap), parser)
	now := time.Now()
	tests := map[string]struct {
		spec   string
		key    string
		banned bool
	}{
		"the raw spec is the key":                   {spec: "custom/Org/Repo/HEAD", key: "custom/Org/Repo/HEAD"},
		"a ban pattern applies":                     {spec: "custom/evil/x", key: "custom/evil/x", banned: true},
		"case does not evade the pattern":           {spec: "custom/EVIL/x", key: "custom/EVIL/x", banned: true},
		"percent-encoding does not evade it either": {spec: "custom/%2565vil/x", key: "custom/%2565vil/x", banned: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := pols.Resolve(tc.spec, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Key != tc.key || (p.Ban != nil && p.Ban.Enforce) != tc.banned {
				t.Errorf("Resolve(%q) = key %q ban %+v; want key %q banned %v", tc.spec, p.Key, p.Ban, tc.key, tc.banned)
			}
		})
	}
	if _, err := SnapshotPolicies(snapshot.NewStore(snap), nil).Resolve("custom/a/b", now); err == nil {
		t.Error("without the extra provider, custom/ must be refused")
	}
}
