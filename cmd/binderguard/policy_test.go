package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binderguard/binderguard/policies/source/file"
)

const examples = "../../manifests/examples"

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

type testVerdict struct {
	Allowed bool              `json:"allowed"`
	Reason  string            `json:"reason"`
	Policy  string            `json:"policy"`
	Patch   []json.RawMessage `json:"patch"`
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyTestEvaluatesSpecsAndPods(t *testing.T) {
	warnDir := t.TempDir()
	writeFile(t, warnDir, "warn.yaml", `apiVersion: binderguard.io/v1alpha1
kind: RepoBan
metadata: {name: watch, namespace: binder}
spec:
  repos: [gh/someone/heavy-repo]
  mode: Warn
  message: this repository is being watched
`)
	pod := writeFile(t, t.TempDir(), "pod.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: build-jupyterlab-2djupyterlab-2ddemo-abc
  labels: {component: binderhub-build, name: build-jupyterlab-2djupyterlab-2ddemo-abc}
  annotations: {binder-repo: "https://github.com/JupyterLab/jupyterlab-demo"}
spec:
  restartPolicy: Never
  containers:
  - name: builder
    image: quay.io/jupyterhub/repo2docker:main
    args: [jupyter-repo2docker, --ref=abc, "https://github.com/JupyterLab/jupyterlab-demo"]
`)
	tests := map[string]struct {
		args    []string
		allowed bool
		policy  string
		reason  string
	}{
		"a spec under the 2018 ban while it applied": {
			args:    []string{"--policies", examples, "--spec", "gh/JupyterLab/jupyterlab-demo.git/main", "--now", "2018-07-30T20:00:00Z"},
			allowed: false, policy: "RepoBan/default/jupyterlab-demo-2018", reason: "jupyterlab-demo is being rebuilt",
		},
		"the same spec after the ban expired gets its launch policy": {
			args:    []string{"--policies", examples, "--spec", "gh/jupyterlab/jupyterlab-demo/HEAD"},
			allowed: true, policy: "LaunchPolicy/default/popular-repos", reason: "no ban applies",
		},
		"a BINDER_REQUEST through the git provider hits an imported pattern": {
			args:    []string{"--policies", examples, "--spec", "v2/git/https%3A%2F%2Fgithub.com%2FInes%2Fspacy-binder/HEAD"},
			allowed: false, policy: "RepoBan/default/mybinder-banned-specs", reason: "Sorry,",
		},
		"any other spec gets the default policy": {
			args:    []string{"--policies", examples, "--spec", "/build/gh/binder-examples/requirements/HEAD"},
			allowed: true, policy: "LaunchPolicy/default/default",
		},
		"a Warn ban allows and says why": {
			args:    []string{"--policies", warnDir, "--spec", "gh/someone/heavy-repo/HEAD"},
			allowed: true, policy: "RepoBan/binder/watch", reason: "Warn mode: this repository is being watched",
		},
		"a build pod of the banned repository": {
			args:    []string{"--policies", examples, "-f", pod, "--now", "2018-07-30T20:00:00Z"},
			allowed: false, policy: "RepoBan/default/jupyterlab-demo-2018",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"policy", "test"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			var v testVerdict
			if err := json.Unmarshal([]byte(stdout), &v); err != nil {
				t.Fatalf("output is not a JSON verdict: %v\n%s", err, stdout)
			}
			if v.Allowed != tc.allowed || v.Policy != tc.policy || !strings.Contains(v.Reason, tc.reason) || v.Patch == nil {
				t.Errorf("verdict = %+v, want allowed %v policy %s reason containing %q and a patch list", v, tc.allowed, tc.policy, tc.reason)
			}
		})
	}
}

func TestPolicyTestBadInputExitsTwoWithOneLine(t *testing.T) {
	broken := t.TempDir()
	writeFile(t, broken, "ban.yaml", "apiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata: {name: x}\nspec:\n  repo: [gh/o/r]\n")
	empty := writeFile(t, t.TempDir(), "empty.yaml", "")
	tests := map[string]struct {
		args []string
		says string
	}{
		"no subcommand":               {[]string{"policy"}, "subcommand is required"},
		"an unknown subcommand":       {[]string{"policy", "lint"}, `unknown subcommand "lint"`},
		"no policies":                 {[]string{"policy", "test", "--spec", "gh/o/r/HEAD"}, "--policies DIR is required"},
		"neither spec nor pod":        {[]string{"policy", "test", "--policies", examples}, "exactly one of"},
		"both spec and pod":           {[]string{"policy", "test", "--policies", examples, "--spec", "gh/o/r/HEAD", "-f", "x.yaml"}, "exactly one of"},
		"an empty pod file":           {[]string{"policy", "test", "--policies", examples, "-f", empty}, "not a pod manifest"},
		"a spec without a ref":        {[]string{"policy", "test", "--policies", examples, "--spec", "gh/o/r"}, `Did you mean "o/r/HEAD"?`},
		"a missing directory":         {[]string{"policy", "test", "--policies", "/nonexistent", "--spec", "gh/o/r/HEAD"}, "--policies"},
		"an invalid policy file":      {[]string{"policy", "test", "--policies", broken, "--spec", "gh/o/r/HEAD"}, `ban.yaml:5: unknown field "repo"`},
		"a bad time":                  {[]string{"policy", "test", "--policies", examples, "--spec", "gh/o/r/HEAD", "--now", "yesterday"}, "RFC 3339"},
		"an unknown flag":             {[]string{"policy", "test", "--spce", "x"}, "spce"},
		"import without config":       {[]string{"policy", "import"}, "--binderhub-config"},
		"import with a bad name":      {[]string{"policy", "import", "--binderhub-config", "x.yaml", "--name", "My_Bans"}, "not a Kubernetes object name"},
		"import with a bad namespace": {[]string{"policy", "import", "--binderhub-config", "x.yaml", "--namespace", "Bin.der"}, "not a Kubernetes namespace"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stdout %q stderr %q)", code, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.says) {
				t.Errorf("stderr %q does not say %q", stderr, tc.says)
			}
			if tc.args[len(tc.args)-1] != "policy" && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
		})
	}
}

func TestPolicyImportMigratesBannedSpecs(t *testing.T) {
	dir := t.TempDir()
	values := writeFile(t, dir, "values.yaml", `binderhub:
  config:
    GitHubRepoProvider:
      banned_specs:
        - ^ines/spacy-binder.*
        - ^soft4voip/rak.*
        - ^(?!myorg\/.*).*$
        - ^exact/repo\Z
    GitLabRepoProvider:
      banned_specs: ['^group%2Fbad.*']
    RepoProvider:
      banned_specs: ['.*xmrig.*']
    BinderHub:
      use_registry: true
`)
	code, stdout, stderr := runCLI(t, "policy", "import", "--binderhub-config", values, "--namespace", "binder", "--name", "imported")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `# NOT IMPORTED: config.GitHubRepoProvider.banned_specs "^(?!myorg\\/.*).*$"`) {
		t.Errorf("the look-ahead pattern is not reported:\n%s", stdout)
	}
	// what import prints must be what the file source (and kubectl) accept
	p, problems := file.Decode("imported.yaml", []byte(stdout), "default")
	if len(problems) > 0 {
		t.Fatalf("imported YAML is invalid: %v\n%s", problems, stdout)
	}
	if len(p.Bans) != 1 || p.Bans[0].Name != "imported" || p.Bans[0].Namespace != "binder" {
		t.Fatalf("bans = %+v", p.Bans)
	}
	got := map[string]string{}
	for _, sp := range p.Bans[0].Spec.Patterns {
		got[string(sp.Regex)] = string(sp.Provider)
	}
	want := map[string]string{"^ines/spacy-binder.*": "gh", "^soft4voip/rak.*": "gh", "^group%2Fbad.*": "gl", ".*xmrig.*": "",
		`^exact/repo\z`: "gh"}
	if len(got) != len(want) {
		t.Errorf("patterns = %v, want %v", got, want)
	}
	for re, prov := range want {
		if p, ok := got[re]; !ok || p != prov {
			t.Errorf("pattern %q: provider %q (present %v), want %q", re, p, ok, prov)
		}
	}

	empty := writeFile(t, dir, "empty.yaml", "config:\n  BinderHub: {use_registry: true}\n")
	if code, _, stderr := runCLI(t, "policy", "import", "--binderhub-config", empty); code != 2 || !strings.Contains(stderr, "no banned_specs") {
		t.Errorf("values without banned_specs: exit %d, %q", code, stderr)
	}
}

// The launch settings read like the LaunchPolicy they came from: CRD field
// names and durations as written in YAML, not Go names and nanoseconds.
func TestPolicyTestSpellsLaunchSettingsLikeTheCRD(t *testing.T) {
	code, stdout, stderr := runCLI(t, "policy", "test", "--policies", examples, "--spec", "gh/jupyterlab/jupyterlab-demo/HEAD")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var v struct {
		Launch map[string]json.RawMessage `json:"launch"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	for _, c := range []struct {
		section, field string
		want           any
	}{
		{"collapse", "holdTimeout", "20m0s"},
		{"collapse", "releaseRate", 10.0},
		{"breaker", "openDuration", "10m0s"},
		{"breaker", "maxBuildDuration", "30m0s"},
		{"build", "activeDeadlineSeconds", 2700.0},
		{"staleWhileBuilding", "enabled", false},
		{"staleWhileBuilding", "maxAge", "168h0m0s"},
	} {
		var section map[string]any
		if err := json.Unmarshal(v.Launch[c.section], &section); err != nil {
			t.Fatalf("launch.%s: %v", c.section, err)
		}
		if got := section[c.field]; got != c.want {
			t.Errorf("launch.%s.%s = %v, want %v", c.section, c.field, got, c.want)
		}
	}
}
