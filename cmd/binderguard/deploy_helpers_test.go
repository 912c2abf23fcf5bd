package main

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// checkSources checks each kustomization directory: it lists exactly the
// YAML files beside it (other entries must be kustomization directories),
// and no listed manifest sets metadata.namespace (kustomize sets it).
func checkSources(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		var kust struct{ Resources []string }
		b, errs := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		errs = errors.Join(errs, yaml.Unmarshal(b, &kust))
		present, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		present = slices.DeleteFunc(present, func(p string) bool { return filepath.Base(p) == "kustomization.yaml" })
		var listed []string
		for _, r := range kust.Resources {
			p := filepath.Join(dir, r)
			if !strings.HasSuffix(r, ".yaml") {
				_, err := os.Stat(filepath.Join(p, "kustomization.yaml"))
				errs = errors.Join(errs, err)
				continue
			}
			listed = append(listed, p)
			b, err := os.ReadFile(p)
			errs = errors.Join(errs, err)
			for _, doc := range manifestDocs(b) {
				var o struct {
					Metadata struct{ Name, Namespace string }
				}
				errs = errors.Join(errs, yaml.Unmarshal(doc, &o))
				if o.Metadata.Namespace != "" {
					t.Errorf("%s: %s sets namespace %q; kustomization.yaml sets it", p, o.Metadata.Name, o.Metadata.Namespace)
				}
			}
		}
		if errs != nil {
			t.Fatalf("%s: %v", dir, errs)
		}
		if slices.Sort(listed); !slices.Equal(listed, present) {
			t.Errorf("%s/kustomization.yaml lists %v, directory has %v", dir, listed, present)
		}
	}
}

func kustomizationNamespace(t *testing.T, dir string) string {
	t.Helper()
	var kust struct{ Namespace string }
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err == nil {
		err = yaml.Unmarshal(b, &kust)
	}
	if err != nil || kust.Namespace == "" {
		t.Fatalf("the namespace of %s/kustomization.yaml: %q, %v", dir, kust.Namespace, err)
	}
	return kust.Namespace
}

// movedKustomization copies manifests/ (the deploy kustomization includes
// ../webhook), does in the copy what an operator does to move the install
// (edit the one `namespace:` line from -> to) and, with certManager, to
// have cert-manager keep the webhook's certificate (uncomment the one
// `components:` line), and returns its deploy directory.
func movedKustomization(t *testing.T, root, from, to string, certManager bool) string {
	t.Helper()
	tmp := t.TempDir()
	p := filepath.Join(tmp, "deploy", "kustomization.yaml")
	err := os.CopyFS(tmp, os.DirFS(filepath.Join(root, "manifests")))
	b, err2 := os.ReadFile(p)
	if err = errors.Join(err, err2); err != nil {
		t.Fatal(err)
	}
	line := "\nnamespace: " + from + "\n"
	if n := bytes.Count(b, []byte(line)); n != 1 {
		t.Fatalf("%s has %d lines %q, want 1", p, n, line)
	}
	b = bytes.Replace(b, []byte(line), []byte("\nnamespace: "+to+"\n"), 1)
	if certManager {
		const component = "\n# components: [../webhook/cert-manager]\n"
		if n := bytes.Count(b, []byte(component)); n != 1 {
			t.Fatalf("%s has %d lines %q, want 1", p, n, component)
		}
		b = bytes.Replace(b, []byte(component), []byte(strings.Replace(component, "# ", "", 1)), 1)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

// mentions reports a string in obj that names namespace ns as a whole DNS
// label or path segment (binderguard-webhook.<ns>.svc, <ns>/name, <ns>).
func mentions(obj any, ns string) (string, bool) {
	y, err := yaml.Marshal(obj)
	if err != nil {
		return err.Error(), true
	}
	re := regexp.MustCompile(`(^|[\s"'./:])` + regexp.QuoteMeta(ns) + `($|[\s"'./:])`)
	for line := range strings.Lines(string(y)) {
		if re.MatchString(line) {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}

// manifestDocs splits a multi-document YAML file (comment-only documents
// decode as empty).
func manifestDocs(b []byte) [][]byte { return bytes.Split(b, []byte("\n---")) }

func manifestKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
