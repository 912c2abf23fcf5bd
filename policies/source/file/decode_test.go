package file

import (
	"strings"
	"testing"
)

const banYAML = `apiVersion: binderguard.io/v1alpha1
kind: RepoBan
metadata:
  name: jupyterlab-demo
spec:
  repos:
    - gh/jupyterlab/jupyterlab-demo
`

const policyYAML = `apiVersion: binderguard.io/v1alpha1
kind: LaunchPolicy
metadata:
  name: default
  namespace: binder
spec:
  collapse:
    maxWaiters: 100
    holdTimeout: 10m
`

func TestDecode(t *testing.T) {
	tests := map[string]struct {
		in       string
		bans     int
		policies int
		line     int    // of the first problem; 0 = no problem
		reason   string // substring of it
	}{
		"one ban":                          {in: banYAML, bans: 1},
		"a ban and a policy in one file":   {in: banYAML + "---\n" + policyYAML, bans: 1, policies: 1},
		"blank and comment-only documents": {in: "# policies\n---\n" + banYAML + "---\n\n---\n# end\n", bans: 1},
		"an unknown field names its line": {in: banYAML + "---\n" + strings.Replace(policyYAML, "    maxWaiters: 100", "    maxWaiters: 100\n    maxWaiter: 3", 1),
			bans: 0, line: 17, reason: `unknown field "maxWaiter"`},
		"a YAML syntax error names its line in the file": {in: banYAML + "---\n" + "apiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata:\n  name: x\n spec: [\n",
			line: 12, reason: "not valid YAML"},
		"another API version": {in: strings.Replace(banYAML, "binderguard.io/v1alpha1", "binderguard.io/v1", 1), line: 1, reason: "apiVersion"},
		"another kind":        {in: "---\n" + strings.Replace(banYAML, "RepoBan", "RepoBlock", 1), line: 2, reason: `kind "RepoBlock"`},
		"an invalid regex names the object and field": {
			in:   banYAML + "---\napiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata:\n  name: bad\nspec:\n  patterns:\n    - regex: '^(?!myorg/).*'\n",
			line: 9, reason: `RepoBan "bad": spec.patterns[0].regex`,
		},
		"a zero duration":         {in: strings.Replace(policyYAML, "10m", "0s", 1), line: 1, reason: "spec.collapse.holdTimeout"},
		"an unparseable duration": {in: strings.Replace(policyYAML, "10m", "ten minutes", 1), line: 1, reason: "ten minutes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, errs := Decode("policies.yaml", []byte(tc.in), "default")
			if tc.line == 0 {
				if len(errs) > 0 {
					t.Fatalf("unexpected problems: %v", errs)
				}
			} else {
				if len(errs) == 0 {
					t.Fatal("no problem reported")
				}
				if errs[0].File != "policies.yaml" || errs[0].Line != tc.line || !strings.Contains(errs[0].Reason, tc.reason) {
					t.Errorf("problem = %v, want policies.yaml:%d containing %q", errs[0], tc.line, tc.reason)
				}
			}
			if len(p.Bans) != tc.bans || len(p.LaunchPolicies) != tc.policies {
				t.Errorf("decoded %d bans %d policies, want %d %d", len(p.Bans), len(p.LaunchPolicies), tc.bans, tc.policies)
			}
			for _, b := range p.Bans {
				if b.Namespace != "default" {
					t.Errorf("ban namespace = %q, want the default", b.Namespace)
				}
			}
			for _, l := range p.LaunchPolicies {
				if l.Namespace != "binder" {
					t.Errorf("policy namespace = %q, want its own", l.Namespace)
				}
			}
		})
	}
}
