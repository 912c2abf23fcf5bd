package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/test/testenv"
)

// TestCEL checks the CRDs' schema and CEL rules against a real API server:
// valid objects are accepted and invalid ones are refused with the rule's
// message (Gateway API tests/cel style). One API server serves every case.
func TestCEL(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	names := new(atomic.Int64)
	create := func(t *testing.T, obj client.Object, wantErrors []string) {
		t.Helper()
		obj.SetNamespace(ns)
		obj.SetName(fmt.Sprintf("obj-%d", names.Add(1)))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := env.Client.Create(ctx, obj)
		if len(wantErrors) == 0 {
			if err != nil {
				t.Fatalf("create: got error %v, want the object accepted", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("create: accepted, want refusal mentioning %q", wantErrors)
		}
		t.Logf("refused as expected: %v", err)
		for _, want := range wantErrors {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("create: error %q does not mention %q", err, want)
			}
		}
	}
	t.Run("RepoBan", func(t *testing.T) { testRepoBanCEL(t, create) })
	t.Run("LaunchPolicy", func(t *testing.T) { testLaunchPolicyCEL(t, create) })
	t.Run("Defaults", func(t *testing.T) { testDefaults(t, env.Client, ns) })
}

type createFunc func(t *testing.T, obj client.Object, wantErrors []string)

func repoBan(mutate func(*v1alpha1.RepoBanSpec)) *v1alpha1.RepoBan {
	b := &v1alpha1.RepoBan{Spec: v1alpha1.RepoBanSpec{
		Repos:   []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"},
		Message: "This repository is building too often; try again later.",
	}}
	if mutate != nil {
		mutate(&b.Spec)
	}
	return b
}

func testRepoBanCEL(t *testing.T, create createFunc) {
	tests := map[string]struct {
		mutate     func(*v1alpha1.RepoBanSpec)
		wantErrors []string
	}{
		"a ban on one GitHub repository is accepted": {},
		"a ban on a git clone URL and a GitLab namespace is accepted": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"git/https%3A%2F%2Fgithub.com%2Forg%2Frepo.git", "gl/group%2Fproject"}
			},
		},
		"a ban with only BinderHub patterns is accepted": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = nil
				s.Patterns = []v1alpha1.SpecPattern{{Regex: "^ines/spacy-binder.*", Provider: v1alpha1.ProviderGitHub}, {Regex: ".*xmrig.*"}}
			},
		},
		"a ban with an expiry, Warn mode and onExisting Report is accepted": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Expires = &metav1.Time{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
				s.Mode = v1alpha1.ModeWarn
				s.OnExisting = v1alpha1.OnExistingReport
			},
		},
		"a ban deleting existing pods in Enforce mode is accepted": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Mode = v1alpha1.ModeEnforce
				s.OnExisting = v1alpha1.OnExistingDelete
			},
		},
		"a ban with neither repos nor patterns is refused": {
			mutate:     func(s *v1alpha1.RepoBanSpec) { s.Repos = nil },
			wantErrors: []string{"at least one of repos or patterns must be set"},
		},
		"a ban with empty repos and patterns lists is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{}
				s.Patterns = []v1alpha1.SpecPattern{}
			},
			wantErrors: []string{"at least one of repos or patterns must be set"},
		},
		"deleting existing pods in Audit mode is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Mode = v1alpha1.ModeAudit
				s.OnExisting = v1alpha1.OnExistingDelete
			},
			wantErrors: []string{"onExisting: Delete requires mode: Enforce"},
		},
		"a Python look-ahead pattern that RE2 cannot compile is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Patterns = []v1alpha1.SpecPattern{{Regex: "^(?!good-org/).*"}}
			},
			wantErrors: []string{"spec.patterns[0].regex", "regex must be a valid RE2 regular expression"},
		},
		"an unbalanced pattern is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Patterns = []v1alpha1.SpecPattern{{Regex: "^org/(repo"}}
			},
			wantErrors: []string{"regex must be a valid RE2 regular expression"},
		},
		"an empty pattern is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Patterns = []v1alpha1.SpecPattern{{Regex: ""}}
			},
			wantErrors: []string{"spec.patterns[0].regex"},
		},
		"a pattern for an unknown provider is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Patterns = []v1alpha1.SpecPattern{{Regex: ".*", Provider: "bitbucket"}}
			},
			wantErrors: []string{"spec.patterns[0].provider", "Unsupported value"},
		},
		"a repository URL instead of a provider spec is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"https://github.com/org/repo"}
			},
			wantErrors: []string{"spec.repos[0]", "should match"},
		},
		"a GitHub repository without its name is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"gh/onlyowner"}
			},
			wantErrors: []string{"spec.repos[0]", "a gh or gist repository is <provider>/<owner>/<name>"},
		},
		"a GitHub repository with a ref is accepted (the ref is ignored)": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"gh/org/repo/HEAD"}
			},
		},
		"a gist without its id is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"gist/user/"}
			},
			wantErrors: []string{"a gh or gist repository is <provider>/<owner>/<name>"},
		},
		"a repository with whitespace is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"gh/org/my repo"}
			},
			wantErrors: []string{"spec.repos[0]", "should match"},
		},
		"the same repository listed twice is refused": {
			mutate: func(s *v1alpha1.RepoBanSpec) {
				s.Repos = []v1alpha1.RepoRef{"gh/org/repo", "gh/org/repo"}
			},
			wantErrors: []string{"spec.repos[1]", "Duplicate value"},
		},
		"an unknown mode is refused": {
			mutate:     func(s *v1alpha1.RepoBanSpec) { s.Mode = "Block" },
			wantErrors: []string{"spec.mode", "Unsupported value"},
		},
		"a message over 1024 characters is refused": {
			mutate:     func(s *v1alpha1.RepoBanSpec) { s.Message = strings.Repeat("x", 1025) },
			wantErrors: []string{"spec.message", "Too long"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			create(t, repoBan(tc.mutate), tc.wantErrors)
		})
	}
}

func launchPolicy(mutate func(*v1alpha1.LaunchPolicySpec)) *v1alpha1.LaunchPolicy {
	p := &v1alpha1.LaunchPolicy{Spec: v1alpha1.LaunchPolicySpec{
		Selector: v1alpha1.SpecSelector{
			Repos:    []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"},
			Patterns: []v1alpha1.SpecPattern{{Regex: "^binder-examples/.*", Provider: v1alpha1.ProviderGitHub}},
		},
		Priority: 10,
		Collapse: &v1alpha1.CollapseSpec{
			Enabled:      ptr.To(true),
			MaxWaiters:   ptr.To[int32](500),
			HoldTimeout:  &metav1.Duration{Duration: 30 * time.Minute},
			ReleaseRate:  ptr.To(resource.MustParse("5")),
			ReleaseBurst: ptr.To[int32](10),
		},
		Shed: &v1alpha1.ShedSpec{
			MaxConcurrentPerSpec: ptr.To[int32](32),
			MaxConcurrentTotal:   ptr.To[int32](64),
			MaxWaitersTotal:      ptr.To[int32](5000),
		},
		Breaker: &v1alpha1.BreakerSpec{
			ConsecutiveFailures: ptr.To[int32](3),
			OpenDuration:        &metav1.Duration{Duration: 5 * time.Minute},
			MaxBuildDuration:    &metav1.Duration{Duration: time.Hour},
		},
		Build: &v1alpha1.BuildSpec{
			Resources: &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("2Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("2G")},
			},
			ActiveDeadlineSeconds: ptr.To[int64](4 * 3600),
		},
		StaleWhileBuilding: &v1alpha1.StaleWhileBuildingSpec{
			Enabled: ptr.To(true),
			MaxAge:  &metav1.Duration{Duration: 168 * time.Hour},
		},
	}}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

func testLaunchPolicyCEL(t *testing.T, create createFunc) {
	tests := map[string]struct {
		mutate     func(*v1alpha1.LaunchPolicySpec)
		wantErrors []string
	}{
		"a policy setting everything is accepted": {},
		"an empty policy selecting every spec is accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) { *s = v1alpha1.LaunchPolicySpec{} },
		},
		"limits equal to requests are accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Build.Resources.Limits[corev1.ResourceCPU] = resource.MustParse("0.5")
			},
		},
		"limits without requests are accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) { s.Build.Resources.Requests = nil },
		},
		"a compound hold timeout is accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Collapse.HoldTimeout = &metav1.Duration{Duration: 90*time.Minute + 30*time.Second}
			},
		},
		"a zero hold timeout is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Collapse.HoldTimeout = &metav1.Duration{} },
			wantErrors: []string{"holdTimeout must be a positive duration"},
		},
		"a negative open duration is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Breaker.OpenDuration = &metav1.Duration{Duration: -time.Minute}
			},
			wantErrors: []string{"openDuration must be a positive duration"},
		},
		"a zero maximum build duration is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Breaker.MaxBuildDuration = &metav1.Duration{} },
			wantErrors: []string{"maxBuildDuration must be a positive duration"},
		},
		"a zero stale maxAge is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.StaleWhileBuilding.MaxAge = &metav1.Duration{} },
			wantErrors: []string{"maxAge must be a positive duration"},
		},
		"a negative stale maxAge is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.StaleWhileBuilding.MaxAge = &metav1.Duration{Duration: -time.Hour}
			},
			wantErrors: []string{"maxAge must be a positive duration"},
		},
		"staleWhileBuilding without maxAge is accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) { s.StaleWhileBuilding.MaxAge = nil },
		},
		"a zero release rate is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Collapse.ReleaseRate = ptr.To(resource.MustParse("0")) },
			wantErrors: []string{"releaseRate must be a positive quantity"},
		},
		"a site-wide policy with a client IP rate is accepted": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Selector = v1alpha1.SpecSelector{}
				s.Shed.ClientIPRate, s.Shed.ClientIPBurst = ptr.To(resource.MustParse("500m")), ptr.To[int32](5)
			},
		},
		"a client IP rate on a policy with a selector is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Shed.ClientIPRate = ptr.To(resource.MustParse("500m")) },
			wantErrors: []string{"shed.clientIPRate is enforced site-wide"},
		},
		"a negative client IP rate is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Selector = v1alpha1.SpecSelector{}
				s.Shed.ClientIPRate = ptr.To(resource.MustParse("-100m"))
			},
			wantErrors: []string{"clientIPRate must be a positive quantity"},
		},
		"a release burst without a release rate is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Collapse.ReleaseRate = nil },
			wantErrors: []string{"releaseBurst requires releaseRate"},
		},
		"a client IP burst without a client IP rate is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Shed.ClientIPBurst = ptr.To[int32](5) },
			wantErrors: []string{"clientIPBurst requires clientIPRate"},
		},
		"a per-spec concurrency above the total is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Shed.MaxConcurrentPerSpec = ptr.To[int32](65) },
			wantErrors: []string{"maxConcurrentPerSpec must not exceed maxConcurrentTotal"},
		},
		"more waiters per spec than in total is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Collapse.MaxWaiters = ptr.To[int32](5001) },
			wantErrors: []string{"collapse.maxWaiters must not exceed shed.maxWaitersTotal"},
		},
		"a cpu limit below the cpu request is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Build.Resources.Limits[corev1.ResourceCPU] = resource.MustParse("250m")
			},
			wantErrors: []string{"resources.limits must be at least resources.requests"},
		},
		"a memory limit below the memory request in other units is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Build.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("1000M") // < 1Gi
			},
			wantErrors: []string{"resources.limits must be at least resources.requests"},
		},
		"a priority above 1000 is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Priority = 1001 },
			wantErrors: []string{"spec.priority", "less than or equal to 1000"},
		},
		"a zero active deadline is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Build.ActiveDeadlineSeconds = ptr.To[int64](0) },
			wantErrors: []string{"spec.build.activeDeadlineSeconds"},
		},
		"zero consecutive failures is refused": {
			mutate:     func(s *v1alpha1.LaunchPolicySpec) { s.Breaker.ConsecutiveFailures = ptr.To[int32](0) },
			wantErrors: []string{"spec.breaker.consecutiveFailures"},
		},
		"an invalid selector pattern is refused": {
			mutate: func(s *v1alpha1.LaunchPolicySpec) {
				s.Selector.Patterns = []v1alpha1.SpecPattern{{Regex: `^org/\1`}}
			},
			wantErrors: []string{"spec.selector.patterns[0].regex", "regex must be a valid RE2 regular expression"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			create(t, launchPolicy(tc.mutate), tc.wantErrors)
		})
	}

	// Typed objects always send quantities as strings and durations in
	// Go's format; kubectl users write integers and their own strings.
	raw := map[string]struct {
		spec       map[string]any
		wantErrors []string
	}{
		"an integer release rate is accepted": {
			spec: map[string]any{"collapse": map[string]any{"releaseRate": int64(2)}},
		},
		"a zero integer release rate is refused": {
			spec:       map[string]any{"collapse": map[string]any{"releaseRate": int64(0)}},
			wantErrors: []string{"releaseRate must be a positive quantity"},
		},
		"an integer cpu request above a milli-cpu limit is refused": {
			spec: map[string]any{"build": map[string]any{"resources": map[string]any{
				"requests": map[string]any{"cpu": int64(2)},
				"limits":   map[string]any{"cpu": "1500m"},
			}}},
			wantErrors: []string{"resources.limits must be at least resources.requests"},
		},
		"an integer cpu limit above a milli-cpu request is accepted": {
			spec: map[string]any{"build": map[string]any{"resources": map[string]any{
				"requests": map[string]any{"cpu": "1500m"},
				"limits":   map[string]any{"cpu": int64(2)},
			}}},
		},
		"a stale maxAge in days is refused": {
			spec:       map[string]any{"staleWhileBuilding": map[string]any{"enabled": true, "maxAge": "7d"}},
			wantErrors: []string{"maxAge must be a positive duration"},
		},
		"a hold timeout in days is refused": {
			spec:       map[string]any{"collapse": map[string]any{"holdTimeout": "1d"}},
			wantErrors: []string{"holdTimeout must be a positive duration"},
		},
	}
	for name, tc := range raw {
		t.Run(name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]any{"spec": tc.spec}}
			u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(v1alpha1.KindLaunchPolicy))
			create(t, u, tc.wantErrors)
		})
	}
}

func testDefaults(t *testing.T, c client.Client, ns string) {
	ctx := context.Background()
	ban := repoBan(nil)
	ban.Namespace, ban.Name = ns, "defaults"
	if err := c.Create(ctx, ban); err != nil {
		t.Fatalf("create RepoBan: %v", err)
	}
	if ban.Spec.Mode != v1alpha1.ModeEnforce || ban.Spec.OnExisting != v1alpha1.OnExistingIgnore {
		t.Errorf("RepoBan defaults: mode %q onExisting %q, want Enforce and Ignore", ban.Spec.Mode, ban.Spec.OnExisting)
	}
	lp := &v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "defaults"}}
	if err := c.Create(ctx, lp); err != nil {
		t.Fatalf("create LaunchPolicy: %v", err)
	}
	if lp.Spec.Mode != v1alpha1.ModeEnforce {
		t.Errorf("LaunchPolicy default mode %q, want Enforce", lp.Spec.Mode)
	}
}
