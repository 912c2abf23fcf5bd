package evaluate

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestValidate(t *testing.T) {
	const repo = "github.com/bad/miner"
	tests := map[string]struct {
		pod      *corev1.Pod
		pols     fakePolicies
		allowed  bool
		policy   string
		rule     string
		reason   []string // substrings the reason must contain
		warnings int
		findings int
	}{
		"a build pod of a banned repository is denied naming policy, rule and repository": {
			pod:     buildPod("https://github.com/bad/miner").limits(stdBuild.Resources.Limits).deadline(60).pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce), build: stdBuild},
			allowed: false, policy: "RepoBan/binder/crypto", rule: repo, findings: 1,
			reason: []string{"build pod of repository github.com/bad/miner is banned by RepoBan/binder/crypto", `rule "github.com/bad/miner"`, "mining"},
		},
		"a build pod spelling the repository another way is denied": {
			pod:     buildPod("https://GitHub.com/Bad/Miner.git/").limits(stdBuild.Resources.Limits).deadline(60).pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce), build: stdBuild},
			allowed: false, policy: "RepoBan/binder/crypto", findings: 1,
		},
		"a build pod without the binder-repo annotation is still denied from its command line": {
			pod:     buildPod("https://github.com/bad/miner").annotation("binder-repo", "").limits(stdBuild.Resources.Limits).deadline(60).pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce), build: stdBuild},
			allowed: false, findings: 1, reason: []string{"banned"},
		},
		"a build pod whose annotation disagrees with its command line is denied on either": {
			pod:     buildPod("https://github.com/bad/miner").annotation("binder-repo", "https://github.com/good/repo").limits(stdBuild.Resources.Limits).deadline(60).pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce), build: stdBuild},
			allowed: false, findings: 1,
		},
		"a build pod of another repository within limits is allowed": {
			pod:     buildPod("https://github.com/good/repo").limits(stdBuild.Resources.Limits).deadline(60).pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce), build: stdBuild},
			allowed: true,
		},
		"a build pod over the cpu maximum is denied": {
			pod:     buildPod("https://github.com/good/repo").limits(corev1.ResourceList{"cpu": q("4"), "memory": q("1G"), "ephemeral-storage": q("1G")}).deadline(60).pod(),
			pols:    fakePolicies{build: stdBuild},
			allowed: false, policy: "LaunchPolicy/binder/builds", rule: RuleBuildResources, findings: 1,
			reason: []string{"spec.containers[0].resources.limits[cpu]", "exceeds the maximum 1", "github.com/good/repo"},
		},
		"a build pod without limits is denied when the mutation did not run": {
			pod:     buildPod("https://github.com/good/repo").pod(),
			pols:    fakePolicies{build: stdBuild},
			allowed: false, rule: RuleBuildResources, findings: 2,
			reason: []string{"a limit of at most 1 is required", "build pods must have a deadline of at most 3600s"},
		},
		"a build pod with a longer deadline is denied by the deadline rule": {
			pod:     buildPod("https://github.com/good/repo").limits(stdBuild.Resources.Limits).deadline(7200).pod(),
			pols:    fakePolicies{build: stdBuild},
			allowed: false, rule: RuleBuildDeadline, findings: 1, reason: []string{"must be at most 3600s"},
		},
		"a build pod over the maximum under a Warn policy is allowed with a warning": {
			pod:     buildPod("https://github.com/good/repo").pod(),
			pols:    fakePolicies{build: func() BuildPolicy { b := stdBuild; b.Mode = ModeWarn; return b }()},
			allowed: true, warnings: 2, findings: 2,
		},
		"a user pod of a banned repository is denied from BINDER_REPO_URL": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/bad/miner").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce)},
			allowed: false, findings: 1, reason: []string{"user pod of repository github.com/bad/miner is banned"},
		},
		"a user pod of a banned repository is denied from BINDER_PERSISTENT_REQUEST alone": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/good/repo", "BINDER_PERSISTENT_REQUEST", "v2/gh/Bad/Miner/HEAD").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce)},
			allowed: false, findings: 1,
		},
		"a user pod naming the banned repository twice gives one finding": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/bad/miner", "BINDER_REQUEST", "v2/gh/bad/miner/HEAD").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce)},
			allowed: false, findings: 1,
		},
		"a user pod of a banned repository under Warn is allowed with one short warning": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/bad/miner").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeWarn)},
			allowed: true, warnings: 1, findings: 1,
		},
		"a user pod of a banned repository under Audit is allowed silently with a finding": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/bad/miner").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeAudit)},
			allowed: true, findings: 1,
		},
		"a user pod with an unreadable repository is allowed with a warning": {
			pod:     userPod("BINDER_REPO_URL", "garbage").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce)},
			allowed: true, warnings: 1,
		},
		"a pod that is not a binder pod is allowed even if it names a banned repository": {
			pod:     userPod("BINDER_REPO_URL", "https://github.com/bad/miner").label("component", "hub").pod(),
			pols:    fakePolicies{bans: ban(repo, ModeEnforce)},
			allowed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := Validate(tc.pod, tc.pols)
			if v.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (reason %q)", v.Allowed, tc.allowed, v.Reason)
			}
			if tc.policy != "" && v.Policy != tc.policy {
				t.Errorf("policy = %q, want %q", v.Policy, tc.policy)
			}
			if tc.rule != "" && v.Rule != tc.rule {
				t.Errorf("rule = %q, want %q", v.Rule, tc.rule)
			}
			for _, s := range tc.reason {
				if !strings.Contains(v.Reason, s) {
					t.Errorf("reason %q does not contain %q", v.Reason, s)
				}
			}
			if len(v.Warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", v.Warnings, tc.warnings)
			}
			for _, w := range v.Warnings {
				if len(w) >= 120 {
					t.Errorf("warning %q is %d bytes, want < 120", w, len(w))
				}
			}
			if len(v.Findings) != tc.findings {
				t.Errorf("findings = %+v, want %d", v.Findings, tc.findings)
			}
		})
	}
}

func TestMutate(t *testing.T) {
	tests := map[string]struct {
		pod   *corev1.Pod
		build BuildPolicy
		want  string // JSON of the patch
	}{
		"a build pod without resources gets the policy's limits, requests and deadline": {
			pod:   buildPod("https://github.com/good/repo").pod(),
			build: stdBuild,
			want: `[{"op":"add","path":"/spec/activeDeadlineSeconds","value":3600},
				{"op":"add","path":"/spec/containers/0/resources/limits","value":{"cpu":"1","ephemeral-storage":"2G","memory":"2G"}},
				{"op":"add","path":"/spec/containers/0/resources/requests","value":{"cpu":"250m","memory":"1G"}}]`,
		},
		"limits above the maximum are clamped and only they change": {
			pod: buildPod("https://github.com/good/repo").
				limits(corev1.ResourceList{"cpu": q("4"), "memory": q("1G"), "ephemeral-storage": q("10G")}).
				requests(corev1.ResourceList{"cpu": q("100m"), "memory": q("512M")}).deadline(600).pod(),
			build: stdBuild,
			want: `[{"op":"replace","path":"/spec/containers/0/resources/limits/cpu","value":"1"},
				{"op":"replace","path":"/spec/containers/0/resources/limits/ephemeral-storage","value":"2G"}]`,
		},
		"a default request is never set above the container's own limit": {
			pod: buildPod("https://github.com/good/repo").
				limits(corev1.ResourceList{"cpu": q("100m"), "memory": q("512M"), "ephemeral-storage": q("1G")}).deadline(600).pod(),
			build: stdBuild,
			want:  `[{"op":"add","path":"/spec/containers/0/resources/requests","value":{"cpu":"100m","memory":"512M"}}]`,
		},
		"a container with only a memory limit gets the missing limits key by key": {
			pod: buildPod("https://github.com/good/repo").
				limits(corev1.ResourceList{"memory": q("1G")}).requests(corev1.ResourceList{"cpu": q("100m"), "memory": q("512M")}).deadline(60).pod(),
			build: stdBuild,
			want: `[{"op":"add","path":"/spec/containers/0/resources/limits/cpu","value":"1"},
				{"op":"add","path":"/spec/containers/0/resources/limits/ephemeral-storage","value":"2G"}]`,
		},
		"an init container is bounded too": {
			pod: func() *corev1.Pod {
				p := buildPod("https://github.com/good/repo").limits(stdBuild.Resources.Limits).requests(stdBuild.Resources.Requests).deadline(60).pod()
				p.Spec.InitContainers = []corev1.Container{{Name: "fetch", Image: "x", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{"memory": q("8G")}}}}
				return p
			}(),
			build: stdBuild,
			want: `[{"op":"add","path":"/spec/initContainers/0/resources/limits","value":{"cpu":"1","ephemeral-storage":"2G","memory":"2G"}},
				{"op":"add","path":"/spec/initContainers/0/resources/requests/cpu","value":"250m"},
				{"op":"replace","path":"/spec/initContainers/0/resources/requests/memory","value":"2G"}]`,
		},
		"a longer deadline is lowered": {
			pod:   buildPod("https://github.com/good/repo").limits(stdBuild.Resources.Limits).requests(stdBuild.Resources.Requests).deadline(86400).pod(),
			build: stdBuild,
			want:  `[{"op":"replace","path":"/spec/activeDeadlineSeconds","value":3600}]`,
		},
		"a pod already within the policy gets an empty patch": {
			pod:   buildPod("https://github.com/good/repo").limits(stdBuild.Resources.Limits).requests(stdBuild.Resources.Requests).deadline(60).pod(),
			build: stdBuild,
			want:  `[]`,
		},
		"a Warn policy does not mutate": {
			pod:   buildPod("https://github.com/good/repo").pod(),
			build: func() BuildPolicy { b := stdBuild; b.Mode = ModeWarn; return b }(),
			want:  `[]`,
		},
		"a user pod is never mutated": {
			pod:   userPod("BINDER_REPO_URL", "https://github.com/good/repo").pod(),
			build: stdBuild,
			want:  `[]`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			v := Mutate(tc.pod, fakePolicies{build: tc.build})
			if !v.Allowed {
				t.Fatalf("mutation denied: %s", v.Reason)
			}
			if diff := cmp.Diff(before, tc.pod); diff != "" {
				t.Fatalf("Mutate changed its input (-before +after):\n%s", diff)
			}
			var got, wantOps any
			raw, _ := json.Marshal(v.Patch)
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &wantOps); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantOps, got); diff != "" {
				t.Fatalf("patch (-want +got):\n%s", diff)
			}
			// The patch applied to the pod is accepted by the validator and
			// a second round changes nothing (idempotence).
			pj, _ := json.Marshal(tc.pod)
			patch, err := jsonpatchapply.DecodePatch(raw)
			if err != nil {
				t.Fatal(err)
			}
			out, err := patch.Apply(pj)
			if err != nil {
				t.Fatalf("applying the patch: %v", err)
			}
			var mutated corev1.Pod
			if err := json.Unmarshal(out, &mutated); err != nil {
				t.Fatal(err)
			}
			// The patch yields exactly what MutateBuild does to the pod.
			want := tc.pod.DeepCopy()
			if tc.build.Mode == ModeEnforce && KindOf(want) == KindBuild {
				MutateBuild(want, tc.build)
			}
			if !apiequality.Semantic.DeepEqual(want, &mutated) {
				t.Fatalf("patched pod differs from the mutated one:\n%s", cmp.Diff(want, &mutated))
			}
			again := Mutate(&mutated, fakePolicies{build: tc.build})
			if len(again.Patch) != 0 {
				t.Fatalf("second mutation is not empty: %+v", again.Patch)
			}
			if tc.build.Mode == ModeEnforce && KindOf(&mutated) == KindBuild {
				if errs := ValidateBuild(&mutated, tc.build); len(errs) > 0 {
					t.Fatalf("mutated pod fails validation: %v", errs)
				}
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	tests := map[string]struct {
		pod      *corev1.Pod
		pols     fakePolicies
		allowed  bool
		patchLen int
	}{
		"a build pod without limits is allowed after mutation and carries the patch": {
			pod: buildPod("https://github.com/good/repo").pod(), pols: fakePolicies{build: stdBuild},
			allowed: true, patchLen: 3,
		},
		"a banned build pod is denied even though it would be mutated": {
			pod:     buildPod("https://github.com/bad/miner").pod(),
			pols:    fakePolicies{build: stdBuild, bans: ban("github.com/bad/miner", ModeEnforce)},
			allowed: false, patchLen: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := Evaluate(tc.pod, tc.pols)
			if v.Allowed != tc.allowed || len(v.Patch) != tc.patchLen {
				t.Fatalf("got allowed=%v patch=%d (%s), want %v %d", v.Allowed, len(v.Patch), v.Reason, tc.allowed, tc.patchLen)
			}
		})
	}
}

func TestRead(t *testing.T) {
	tests := map[string]struct {
		args      []string
		ref, repo string
	}{
		"ref and repository in the equals form": {
			args: []string{"jupyter-repo2docker", "--ref=abc", "--image=x", "https://github.com/a/b"}, ref: "abc", repo: "https://github.com/a/b",
		},
		"ref as a separate argument": {
			args: []string{"jupyter-repo2docker", "--ref", "abc", "--no-run", "https://gitlab.com/a/b"}, ref: "abc", repo: "https://gitlab.com/a/b",
		},
		"a trailing flag value is not taken for the repository": {
			args: []string{"jupyter-repo2docker", "--no-run", "--ref", "main"}, ref: "main",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := buildPod("").annotation("binder-repo", "").pod()
			p.Spec.Containers[0].Args = tc.args
			f := Read(p)
			if f.Ref != tc.ref || f.RepoURL != tc.repo {
				t.Fatalf("ref=%q repo=%q, want %q %q", f.Ref, f.RepoURL, tc.ref, tc.repo)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := map[string]struct {
		in   string
		n    int
		want string
	}{
		"a short string is kept":               {"abc", 10, "abc"},
		"a long string is cut with a marker":   {"abcdefghij", 8, "abcde..."},
		"a cut never splits a multi-byte rune": {"ééééé", 6, "é..."},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Truncate(tc.in, tc.n); got != tc.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

func TestDefaultRequestsCopiesLimitsIntoMissingRequests(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "build", Resources: corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{"cpu": resource.MustParse("8"), "memory": resource.MustParse("64G")},
			Requests: corev1.ResourceList{"cpu": resource.MustParse("1")},
		}}},
		InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{"memory": resource.MustParse("1G")},
		}}},
	}}
	DefaultRequests(pod)
	for _, tc := range []struct {
		got  corev1.ResourceList
		name corev1.ResourceName
		want string
	}{
		{pod.Spec.Containers[0].Resources.Requests, "cpu", "1"},      // set: kept
		{pod.Spec.Containers[0].Resources.Requests, "memory", "64G"}, // missing: the limit
		{pod.Spec.InitContainers[0].Resources.Requests, "memory", "1G"},
	} {
		if q, ok := tc.got[tc.name]; !ok || q.String() != tc.want {
			t.Errorf("request %s = %v, want %s", tc.name, tc.got[tc.name], tc.want)
		}
	}
}
