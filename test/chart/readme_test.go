package chart

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/readme"
)

// The README's table of values ("### With Helm") names every value of
// values.yaml (a row may cover a whole map, e.g. `resources`), and names
// nothing the chart's schema does not know.
func TestREADMEDocumentsEveryValue(t *testing.T) {
	r := newRepo(t)
	sec, err := readme.Section(filepath.Join(r.root, "README.md"), "### With Helm")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`[^|]*`) \\|")
	name := regexp.MustCompile("`([^`]+)`")
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			documented[n[1]] = true
		}
	}
	if len(documented) < 20 {
		t.Fatalf("found %d documented values in the README's table: %v", len(documented), documented)
	}

	var values map[string]any
	vb, err := os.ReadFile(filepath.Join(r.chart, "values.yaml"))
	if err == nil {
		err = yaml.Unmarshal(vb, &values)
	}
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		for p := prefix; p != ""; {
			if documented[p] {
				return
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, sub := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
			}
			return
		}
		t.Errorf("value %s (values.yaml) is not in the README's table", prefix)
	}
	walk("", values)

	var schema struct{ Properties map[string]json.RawMessage }
	sb, err := os.ReadFile(filepath.Join(r.chart, "values.schema.json"))
	if err == nil {
		err = json.Unmarshal(sb, &schema)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range slices.Sorted(maps.Keys(documented)) {
		if !inSchema(t, schema.Properties, strings.Split(n, ".")) {
			t.Errorf("the README documents %s, which values.schema.json does not have", n)
		}
	}
}

func inSchema(t *testing.T, props map[string]json.RawMessage, path []string) bool {
	raw, ok := props[path[0]]
	if !ok {
		return false
	}
	if len(path) == 1 {
		return true
	}
	var sub struct {
		Properties map[string]json.RawMessage
		AllOf      []struct{ Properties map[string]json.RawMessage }
		Ref        string `json:"$ref"`
	}
	if err := json.Unmarshal(raw, &sub); err != nil {
		t.Fatal(err)
	}
	if _, ok := sub.Properties[path[1]]; !ok && (sub.Ref != "" || len(sub.AllOf) > 0) {
		return true // a shared definition (image, resources)
	}
	return inSchema(t, sub.Properties, path[1:])
}
