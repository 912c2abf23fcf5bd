package v1alpha1_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/testenv"
)

// TestExamplesAreAcceptedByTheAPIServer applies every document in
// manifests/examples, as `kubectl apply -f` would, so the examples that
// local mode reads can never drift from what the CRDs accept.
func TestExamplesAreAcceptedByTheAPIServer(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "manifests", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies found under manifests/examples (err %v)", err)
	}
	env := testenv.Start(t)
	ns := env.Namespace(t)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---")) {
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(file), i, err)
			}
			if len(obj) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			u.SetNamespace(ns)
			if err := env.Client.Create(context.Background(), u); err != nil {
				t.Errorf("%s document %d (%s %s) refused: %v", filepath.Base(file), i, u.GetKind(), u.GetName(), err)
			}
		}
	}
}
