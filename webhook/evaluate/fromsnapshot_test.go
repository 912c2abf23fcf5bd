package evaluate

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// realSnapshot bans gh/bad/miner and bounds build pods of gh/big/builds,
// through the real policy compiler and spec parser.
func realSnapshot(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	d := int64(1800)
	s, errs := snapshot.New(
		[]v1alpha1.RepoBan{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "crypto"},
			Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}, Message: "cryptomining", Mode: v1alpha1.Mode("Enforce")},
		}},
		[]v1alpha1.LaunchPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "big"},
			Spec: v1alpha1.LaunchPolicySpec{
				Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/big/builds"}},
				Build:    &v1alpha1.BuildSpec{Resources: &corev1.ResourceRequirements{Limits: stdBuild.Resources.Limits}, ActiveDeadlineSeconds: &d},
			},
		}},
	)
	if len(errs) > 0 {
		t.Fatalf("building the snapshot: %v", errs)
	}
	return s
}

func TestSnapshotSpellings(t *testing.T) {
	s := realSnapshot(t)
	pols := FromSnapshot(s, nil, time.Now())
	tests := map[string]struct {
		pod     *corev1.Pod
		allowed bool
	}{
		"a build pod with the plain URL is denied":           {buildPod("https://github.com/bad/miner").pod(), false},
		"a build pod with a mixed-case .git URL is denied":   {buildPod("https://GitHub.com/Bad/Miner.git").pod(), false},
		"a build pod with an ssh clone URL is denied":        {buildPod("git@github.com:bad/miner.git").pod(), false},
		"a build pod with a trailing slash is denied":        {buildPod("http://github.com/bad/miner/").pod(), false},
		"a user pod with a git-provider request is denied":   {userPod("BINDER_REQUEST", "v2/git/https%3A%2F%2Fgithub.com%2Fbad%2Fminer.git/HEAD").pod(), false},
		"a user pod with an upper-case gh request is denied": {userPod("BINDER_PERSISTENT_REQUEST", "v2/gh/BAD/Miner/main").pod(), false},
		"a user pod of another repository is allowed":        {userPod("BINDER_REPO_URL", "https://github.com/bad/miner-docs").pod(), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := Validate(tc.pod, pols)
			if v.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %s", v.Allowed, tc.allowed, v.Reason)
			}
			if !tc.allowed && v.Policy != "RepoBan/binder/crypto" {
				t.Fatalf("policy = %q: %s", v.Policy, v.Reason)
			}
		})
	}
}

func TestSnapshotBuildLimits(t *testing.T) {
	pols := FromSnapshot(realSnapshot(t), nil, time.Now())
	tests := map[string]struct {
		repo     string
		policy   string
		patchLen int
	}{
		"a build pod selected by the LaunchPolicy gets its limits":   {"https://github.com/Big/Builds.git", "LaunchPolicy/binder/big", 2},
		"a build pod no LaunchPolicy selects is left alone":          {"https://github.com/small/repo", "default", 0},
		"a build pod with an unreadable repository gets the default": {"not a url", "default", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := Evaluate(buildPod(tc.repo).pod(), pols)
			if !v.Allowed || len(v.Patch) != tc.patchLen || (tc.patchLen > 0 && v.Policy != tc.policy) {
				t.Fatalf("verdict %+v, want allowed with %d patch ops by %s", v, tc.patchLen, tc.policy)
			}
		})
	}
}
