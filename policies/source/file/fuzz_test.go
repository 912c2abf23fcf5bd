package file

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the policy file loader, as a
// half-saved or mistyped file in the watched directory would: it must
// never panic, a file with any problem yields no policies, and every
// problem names the file, a line and a reason.
func FuzzDecode(f *testing.F) {
	examples, _ := filepath.Glob(filepath.Join("..", "..", "..", "manifests", "examples", "*.yaml"))
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "---\n---\n", "{}", "[]", "kind: RepoBan\n", "apiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata: {name: x}\nspec: {repos: [gh/a/b]}\n",
		"apiVersion: binderguard.io/v1alpha1\nkind: LaunchPolicy\nmetadata: {name: x}\nspec: {collapse: {releaseRate: \"abc\"}}\n",
		"\t- : :", "a: &a [*a, *a]\n", "{\"apiVersion\":1}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pols, errs := Decode("policies.yaml", data, "binderhub")
		if len(errs) > 0 && (len(pols.Bans) > 0 || len(pols.LaunchPolicies) > 0) {
			t.Fatalf("%q: %d problems but %d bans and %d launch policies kept", data, len(errs), len(pols.Bans), len(pols.LaunchPolicies))
		}
		for _, e := range errs {
			if e.File != "policies.yaml" || e.Line < 0 || e.Reason == "" {
				t.Fatalf("%q: problem %+v does not name the file, a line and a reason", data, e)
			}
		}
	})
}
