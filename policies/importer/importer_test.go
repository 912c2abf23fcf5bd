package importer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

func TestFindConfig(t *testing.T) {
	cfg := map[string]any{"GitHubRepoProvider": map[string]any{}}
	for name, tc := range map[string]struct {
		values map[string]any
		want   map[string]any
	}{
		"the binderhub chart's config":         {map[string]any{"config": cfg}, cfg},
		"an umbrella chart's binderhub config": {map[string]any{"binderhub": map[string]any{"config": cfg}}, cfg},
		"config wins over binderhub.config":    {map[string]any{"config": cfg, "binderhub": map[string]any{"config": map[string]any{}}}, cfg},
		"no config at all":                     {map[string]any{"replicas": 2}, nil},
		"config that is not a mapping":         {map[string]any{"config": "yes"}, nil},
		"binderhub without config":             {map[string]any{"binderhub": map[string]any{"image": "x"}}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, FindConfig(tc.values)); diff != "" {
				t.Errorf("FindConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBannedSpecs(t *testing.T) {
	specs := func(class string, list ...any) map[string]any {
		return map[string]any{class: map[string]any{"banned_specs": list}}
	}
	long := "^" + strings.Repeat("a", 256)
	for name, tc := range map[string]struct {
		cfg       map[string]any
		want      []v1alpha1.SpecPattern
		wantSkips []Skipped
		wantErr   string
	}{
		"a provider class's patterns carry its provider": {
			cfg:  specs("GitHubRepoProvider", "^ines/spacy-binder.*", "^soft4voip/rak.*"),
			want: []v1alpha1.SpecPattern{{Regex: "^ines/spacy-binder.*", Provider: "gh"}, {Regex: "^soft4voip/rak.*", Provider: "gh"}},
		},
		"RepoProvider's patterns apply to every provider": {
			cfg:  specs("RepoProvider", ".*xmrig.*"),
			want: []v1alpha1.SpecPattern{{Regex: ".*xmrig.*"}},
		},
		"Python's \\Z becomes RE2's \\z": {
			cfg:  specs("GitLabRepoProvider", `^group%2Fbad\Z`),
			want: []v1alpha1.SpecPattern{{Regex: `^group%2Fbad\z`, Provider: "gl"}},
		},
		"classes are read in name order": {
			cfg: map[string]any{
				"ZenodoProvider":     map[string]any{"banned_specs": []any{"^10.5281/zenodo.1.*"}},
				"GitHubRepoProvider": map[string]any{"banned_specs": []any{"^a/b.*"}},
			},
			want: []v1alpha1.SpecPattern{{Regex: "^a/b.*", Provider: "gh"}, {Regex: "^10.5281/zenodo.1.*", Provider: "zenodo"}},
		},
		"a look-ahead RE2 cannot run is skipped with the reason": {
			cfg:       specs("GitHubRepoProvider", `^(?!myorg\/.*).*$`, "^ok/.*"),
			want:      []v1alpha1.SpecPattern{{Regex: "^ok/.*", Provider: "gh"}},
			wantSkips: []Skipped{{Class: "GitHubRepoProvider", Regex: `^(?!myorg\/.*).*$`}},
		},
		"an unknown provider class is skipped": {
			cfg:       specs("MyForgeProvider", "^x/.*"),
			wantSkips: []Skipped{{Class: "MyForgeProvider", Regex: "^x/.*", Reason: "unknown provider class"}},
		},
		"an entry that is not a string is skipped": {
			cfg:       specs("GitHubRepoProvider", 42),
			wantSkips: []Skipped{{Class: "GitHubRepoProvider", Regex: "42", Reason: "not a string"}},
		},
		"a pattern over 256 characters is skipped": {
			cfg:       specs("GitHubRepoProvider", long),
			wantSkips: []Skipped{{Class: "GitHubRepoProvider", Regex: long, Reason: "longer than 256 characters"}},
		},
		"sections without banned_specs and non-mapping sections are ignored": {
			cfg: map[string]any{"BinderHub": map[string]any{"use_registry": true}, "KubeSpawner": "x"},
		},
		"banned_specs that is not a list is an error": {
			cfg:     map[string]any{"GitHubRepoProvider": map[string]any{"banned_specs": "^a/.*"}},
			wantErr: "config.GitHubRepoProvider.banned_specs is not a list",
		},
	} {
		t.Run(name, func(t *testing.T) {
			pats, skips, err := BannedSpecs(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, pats); diff != "" {
				t.Errorf("patterns (-want +got):\n%s", diff)
			}
			// The compiler's wording is not ours to pin: a skip says why,
			// and the look-ahead case only has to say something.
			for i := range skips {
				if i < len(tc.wantSkips) && tc.wantSkips[i].Reason == "" {
					if skips[i].Reason == "" {
						t.Errorf("skip %d has no reason", i)
					}
					skips[i].Reason = ""
				}
			}
			if diff := cmp.Diff(tc.wantSkips, skips); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	pats := func(n int) []v1alpha1.SpecPattern {
		var p []v1alpha1.SpecPattern
		for i := range n {
			p = append(p, v1alpha1.SpecPattern{Regex: v1alpha1.Regex(fmt.Sprintf("^org/repo%d.*", i)), Provider: "gh"})
		}
		return p
	}
	for name, tc := range map[string]struct {
		pats      []v1alpha1.SpecPattern
		skips     []Skipped
		ns        string
		wantBans  map[string]int // name -> patterns
		wantLines []string
		wantErr   bool
	}{
		"one RepoBan for up to 256 patterns": {
			pats: pats(256), ns: "binder", wantBans: map[string]int{"imported": 256},
		},
		"past 256 patterns the rest spill into name-2": {
			pats: pats(300), wantBans: map[string]int{"imported": 256, "imported-2": 44},
		},
		"skipped entries are listed as comments on one line each": {
			pats:      pats(1),
			skips:     []Skipped{{Class: "RepoProvider", Regex: "(?!x)", Reason: "first\nsecond"}},
			wantBans:  map[string]int{"imported": 1},
			wantLines: []string{`# NOT IMPORTED: config.RepoProvider.banned_specs "(?!x)": first second`},
		},
		"only skips print the header and no RepoBan": {
			skips:     []Skipped{{Class: "X", Regex: "y", Reason: "unknown provider class"}},
			wantBans:  map[string]int{},
			wantLines: []string{`# NOT IMPORTED: config.X.banned_specs "y": unknown provider class`},
		},
		"a pattern binderguard would refuse is not printed": {
			pats: []v1alpha1.SpecPattern{{Regex: "(unclosed", Provider: "gh"}}, wantErr: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			err := Write(&out, "values.yaml", "imported", tc.ns, tc.pats, tc.skips)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; printed:\n%s", out.String())
				}
				if strings.Contains(out.String(), "kind: RepoBan") {
					t.Errorf("printed a RepoBan it refused:\n%s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), "# RepoBan imported from the banned_specs in values.yaml") {
				t.Errorf("no header naming the source:\n%s", out.String())
			}
			for _, l := range tc.wantLines {
				if !strings.Contains(out.String(), l+"\n") {
					t.Errorf("missing line %q in:\n%s", l, out.String())
				}
			}
			got := map[string]int{}
			for _, doc := range strings.Split(out.String(), "\n---\n")[1:] {
				var b importedBan
				if err := yaml.UnmarshalStrict([]byte(doc), &b); err != nil {
					t.Fatalf("document %q: %v", doc, err)
				}
				if b.Kind != v1alpha1.KindRepoBan || b.APIVersion != v1alpha1.GroupVersion.String() || b.Metadata.Namespace != tc.ns {
					t.Errorf("document header %+v", b)
				}
				got[b.Metadata.Name] = len(b.Spec.Patterns)
			}
			if diff := cmp.Diff(tc.wantBans, got); diff != "" {
				t.Errorf("RepoBans (-want +got):\n%s", diff)
			}
		})
	}
}
