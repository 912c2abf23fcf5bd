package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/xds/ir"
)

// update regenerates testdata/out: go test ./xds/translate -update (make golden).
var update = flag.Bool("update", false, "rewrite the golden files in testdata/out")

// TestGolden translates every testdata/in/<case>.yaml and compares each
// resource kind with testdata/out/<case>.<kind>.yaml.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			e := readEdge(t, in)
			res, err := Translate(e)
			if err != nil {
				t.Fatalf("translate: %v", err)
			}
			kinds := map[string][]proto.Message{}
			for _, l := range res.Listeners {
				kinds["listeners"] = append(kinds["listeners"], l)
			}
			for _, r := range res.Routes {
				kinds["routes"] = append(kinds["routes"], r)
			}
			for _, c := range res.Clusters {
				kinds["clusters"] = append(kinds["clusters"], c)
			}
			for _, x := range res.Extensions {
				kinds["extensions"] = append(kinds["extensions"], x)
			}
			made := map[string]bool{}
			for kind, got := range kinds {
				out := filepath.Join("testdata", "out", name+"."+kind+".yaml")
				made[out] = true
				if *update {
					writeGolden(t, out, got)
					continue
				}
				compareGolden(t, out, got)
			}
			// A golden file the translation no longer makes is a kind it
			// stopped producing: a difference like any other.
			outs, _ := filepath.Glob(filepath.Join("testdata", "out", name+".*.yaml"))
			for _, o := range outs {
				if !made[o] {
					orphan(t, o)
				}
			}
		})
	}
	// Golden files of inputs that no longer exist.
	cases := map[string]bool{}
	for _, in := range inputs {
		cases[strings.TrimSuffix(filepath.Base(in), ".yaml")] = true
	}
	outs, _ := filepath.Glob("testdata/out/*.yaml")
	for _, o := range outs {
		if name, _, _ := strings.Cut(filepath.Base(o), "."); !cases[name] {
			orphan(t, o)
		}
	}
}

// orphan deletes a golden file nothing produces with -update, and fails the
// test without it.
func orphan(t *testing.T, path string) {
	t.Helper()
	if !*update {
		t.Errorf("%s is produced by no golden case (run make golden to delete it)", path)
		return
	}
	if err := os.Remove(path); err != nil {
		t.Errorf("deleting orphan golden file: %v", err)
	}
}

// durationRE matches Go duration strings in golden inputs, which the IR
// holds as time.Duration.
var durationRE = regexp.MustCompile(`^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$`)

// readEdge reads a golden input, rejecting unknown fields.
func readEdge(t *testing.T, path string) *ir.Edge {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := yaml.Unmarshal(y, &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	js, _ := json.Marshal(durations(raw))
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var e ir.Edge
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &e
}

func durations(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = durations(x)
		}
	case []any:
		for i, x := range v {
			v[i] = durations(x)
		}
	case string:
		if durationRE.MatchString(v) {
			d, _ := time.ParseDuration(v)
			return int64(d)
		}
	}
	return v
}

func marshalGolden(t *testing.T, msgs []proto.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}

func writeGolden(t *testing.T, path string, msgs []proto.Message) {
	t.Helper()
	if err := os.WriteFile(path, marshalGolden(t, msgs), 0o644); err != nil {
		t.Fatal(err)
	}
}

// compareGolden decodes the golden file into the same proto types and
// compares with protocmp, so field order and formatting do not matter.
func compareGolden(t *testing.T, path string, got []proto.Message) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	docs := strings.Split(strings.TrimPrefix(string(b), "---\n"), "\n---\n")
	if len(docs) != len(got) {
		t.Fatalf("%s has %d resources, translation made %d", path, len(docs), len(got))
	}
	for i, doc := range docs {
		if i < len(docs)-1 {
			doc += "\n" // the split took it; a |+ block at the end of a document needs it
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want := got[i].ProtoReflect().New().Interface()
		if err := protojson.Unmarshal(js, want); err != nil {
			t.Fatalf("%s resource %d: %v", path, i, err)
		}
		if diff := cmp.Diff(want, got[i], protocmp.Transform()); diff != "" {
			t.Errorf("%s resource %d differs (-golden +got):\n%s", path, i, diff)
		}
	}
}
