package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/testenv"
)

// helmBin is the helm `make tools` installs; a test fails, never skips,
// when it is missing.
func helmBin(t *testing.T, root string) string {
	t.Helper()
	p := filepath.Join(root, ".tools", "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm is not installed at %s (run `make tools` or test/tools/install.sh helm): %v", p, err)
	}
	return p
}

// Every file derived from the chart, or copied into it, is what `make
// manifests` writes now: a hand edit of the kustomize base, a chart change
// without `make manifests`, or a rule changed in manifests/alerts but not
// copied, fails here.
func TestRenderedFilesAreCurrent(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(t.Context(), root, helmBin(t, root))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(root, "manifests", rel))
		if err != nil {
			t.Errorf("manifests/%s: %v (run `make manifests`)", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("manifests/%s differs from its source at line %d (run `make manifests` and commit the result):\n%s", rel, firstDiff(got, want), cmp.Diff(string(want), string(got)))
		}
	}
	stale, err := Stale(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range stale {
		t.Errorf("manifests/%s is no longer generated (run `make manifests`)", rel)
	}
}

func firstDiff(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// The kustomize install builds exactly the chart's objects, for the
// namespace it ships with and for another one (its replacements follow
// the namespace), with binderguard's own certificate and with the
// cert-manager component (whose patches are the one part kept by hand).
// Helm's labels and kustomize's part-of label and namespaces aside.
func TestKustomizeMatchesChart(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm := helmBin(t, root)
	for _, ns := range []string{Namespace, "bg-elsewhere"} {
		for _, certManager := range []bool{false, true} {
			t.Run(fmt.Sprintf("namespace %s, cert-manager %t", ns, certManager), func(t *testing.T) {
				dir := kustomization(t, root, ns, certManager)
				rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
				if err != nil {
					t.Fatalf("kustomize build: %v", err)
				}
				y, err := rm.AsYaml()
				if err != nil {
					t.Fatal(err)
				}
				var set []string
				if certManager {
					set = append(set, "--set", "webhook.certificate.mode=cert-manager")
				}
				h, err := Template(t.Context(), helm, filepath.Join(root, "manifests", "chart"), ns, set...)
				if err != nil {
					t.Fatal(err)
				}
				kust, chart := objects(t, y), objects(t, h)
				if len(kust) < 10 {
					t.Fatalf("kustomize built only %d objects: %v", len(kust), slices.Sorted(maps.Keys(kust)))
				}
				if d := cmp.Diff(chart, kust); d != "" {
					t.Errorf("kustomize build (+) differs from helm template (-):\n%s", d)
				}
			})
		}
	}
}

// kustomization copies manifests/ and does there what an operator does:
// edit the one `namespace:` line, and uncomment the component line for
// cert-manager. It returns the deploy directory.
func kustomization(t *testing.T, root, ns string, certManager bool) string {
	t.Helper()
	tmp := t.TempDir()
	if err := os.CopyFS(tmp, os.DirFS(filepath.Join(root, "manifests"))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(tmp, "deploy", "kustomization.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^namespace: ` + Namespace + `$`)
	if n := len(line.FindAll(b, -1)); n != 1 {
		t.Fatalf("%s has %d lines `namespace: %s`, want 1", p, n, Namespace)
	}
	b = line.ReplaceAll(b, []byte("namespace: "+ns))
	if certManager {
		const component = "\n# components: [../webhook/cert-manager]\n"
		if n := bytes.Count(b, []byte(component)); n != 1 {
			t.Fatalf("%s has %d lines %q, want 1", p, n, component)
		}
		b = bytes.Replace(b, []byte(component), []byte("\ncomponents: [../webhook/cert-manager]\n"), 1)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

// objects decodes a multi-document YAML stream into "Kind/name" -> object,
// without the labels that say who applied it and without the namespace
// (kustomize sets it; helm leaves it to the release).
func objects(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("decoding %q: %v", doc, err)
		}
		if obj == nil {
			continue
		}
		md, _ := obj["metadata"].(map[string]any)
		key := fmt.Sprintf("%v/%v", obj["kind"], md["name"])
		if _, dup := out[key]; dup {
			t.Errorf("%s twice", key)
		}
		delete(md, "namespace")
		dropLabels(md)
		if spec, ok := obj["spec"].(map[string]any); ok {
			if tmpl, ok := spec["template"].(map[string]any); ok {
				if tmd, ok := tmpl["metadata"].(map[string]any); ok {
					dropLabels(tmd)
				}
			}
		}
		out[key] = obj
	}
	return out
}

func dropLabels(md map[string]any) {
	l, _ := md["labels"].(map[string]any)
	for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/part-of"} {
		delete(l, k)
	}
}
