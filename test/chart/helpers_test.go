package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/testenv"
)

// repo holds the paths every test uses.
type repo struct {
	root, chart, helm string
}

func newRepo(t *testing.T) repo {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	r := repo{root: root, chart: filepath.Join(root, "manifests", "chart"), helm: filepath.Join(root, ".tools", "bin", "helm")}
	if _, err := os.Stat(r.helm); err != nil {
		t.Fatalf("helm is not installed at %s (run `make tools` or test/tools/install.sh helm): %v", r.helm, err)
	}
	return r
}

// run runs helm with args and returns stdout; a failure returns helm's
// stderr in the error.
func (r repo) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.helm, args...)
	// helm keeps caches and repositories under these; keep them out of $HOME.
	tmp, err := os.MkdirTemp("", "helm-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp+"/cache", "HELM_CONFIG_HOME="+tmp+"/config", "HELM_DATA_HOME="+tmp+"/data")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.Bytes(), nil
}

// template renders the chart as release binderguard in ns.
func (r repo) template(t *testing.T, ns string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := r.run(t.Context(), append([]string{"template", "binderguard", r.chart, "--namespace", ns}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

// decode splits helm's output into objects, strictly (a duplicate key in
// a rendered document fails).
func decode(t *testing.T, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("rendered object: %v\n%s", err, doc)
		}
		objs = append(objs, u)
	}
	return objs
}

// index keys objects by "Kind/name".
func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

// str reads a string at path in o ("" when absent).
func str(o *unstructured.Unstructured, path ...string) string {
	s, _, _ := unstructured.NestedString(o.Object, path...)
	return s
}

// container returns the named container (or init container) of a
// Deployment as a map.
func container(t *testing.T, dep *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	for _, field := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", field)
		for _, c := range cs {
			if m := c.(map[string]any); m["name"] == name {
				return m
			}
		}
	}
	t.Fatalf("Deployment %s has no container %s", dep.GetName(), name)
	return nil
}

func args(c map[string]any) []string {
	var out []string
	for _, a := range c["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// valuesFile writes YAML values for one test and returns the -f flag.
func valuesFile(t *testing.T, values string) []string {
	t.Helper()
	// Not t.TempDir: helm splits -f on commas, which test names have.
	dir, err := os.MkdirTemp("", "values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", p}
}
