package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExtraProvidersAreTakenWhole(t *testing.T) {
	p, err := NewParser("custom", "my.forge")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		in        string
		repo      Repo
		buildKey  string
		spellings []Spelling // exactly these
	}{
		"the raw spec is the build key, case and encoding kept": {
			in: "custom/Org/Repo%2Dx/HEAD", repo: "custom:org/repo-x/head", buildKey: "custom/Org/Repo%2Dx/HEAD",
			spellings: []Spelling{{"custom", "Org/Repo%2Dx/HEAD", false}, {"custom", "org/repo-x/head", true}},
		},
		"trailing slashes go as for every provider": {
			in: "/build/custom/a/b//", repo: "custom:a/b", buildKey: "custom/a/b",
			spellings: []Spelling{{"custom", "a/b", true}},
		},
		"double encoding decodes to one identity": {
			in: "my.forge/%2565vil", repo: "my.forge:evil", buildKey: "my.forge/%2565vil",
			spellings: []Spelling{{"my.forge", "%2565vil", false}, {"my.forge", "evil", true}},
		},
		"an extra spec is never another provider's spelling": {
			in: "custom/https%3A%2F%2Fgithub.com%2Forg%2Frepo/HEAD", repo: "custom:https://github.com/org/repo/head",
			buildKey:  "custom/https%3A%2F%2Fgithub.com%2Forg%2Frepo/HEAD",
			spellings: []Spelling{{"custom", "https%3A%2F%2Fgithub.com%2Forg%2Frepo/HEAD", false}, {"custom", "https://github.com/org/repo/head", true}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := p.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Repo != tc.repo || sp.BuildKey() != tc.buildKey {
				t.Errorf("Parse(%q): repo %q key %q, want %q %q", tc.in, sp.Repo, sp.BuildKey(), tc.repo, tc.buildKey)
			}
			if got := sp.Spellings(); !slices.Equal(got, tc.spellings) {
				t.Errorf("Spellings = %+v, want %+v", got, tc.spellings)
			}
			req, err := p.ParseRequest("v2/" + strings.TrimPrefix(tc.in, "/build/"))
			if err != nil || req != sp {
				t.Errorf("ParseRequest = %+v, %v; want %+v", req, err, sp)
			}
		})
	}
}

func TestExtraProvidersRefuseWhatEveryProviderRefuses(t *testing.T) {
	p, _ := NewParser("custom")
	for name, in := range map[string]string{
		"an empty spec":                         "custom/",
		"a control character once decoded":      "custom/a%00b",
		"a space":                               "custom/a b",
		"longer than the parser reads":          "custom/" + strings.Repeat("a", maxInput),
		"a provider that is still not known":    "other/a/b",
		"an extra provider the package ignores": "",
	} {
		t.Run(name, func(t *testing.T) {
			parse := p.Parse
			if in == "" {
				parse, in = Parse, "custom/a/b" // the package functions know only the built-ins
			}
			_, err := parse(in)
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("Parse(%.80q) = %v, want a *Error", in, err)
			}
		})
	}
	_, err := Parse("custom/a/b")
	if err == nil || !strings.Contains(err.Error(), `no provider found for prefix "custom"`) {
		t.Errorf("without the extra provider: %v, want no provider found", err)
	}
	if _, err := p.Parse("other/a"); err == nil || !strings.Contains(err.Error(), "ckan, custom") {
		t.Errorf("the error should list the extra provider among the known ones: %v", err)
	}
}

func TestNewParserRefusesBadNames(t *testing.T) {
	for name, extra := range map[string][]string{
		"a built-in provider": {"gh"},
		"a repeated name":     {"a", "a"},
		"a slash":             {"a/b"},
		"empty":               {""},
		"a space":             {"my forge"},
		"too long":            {strings.Repeat("x", 64)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewParser(extra...); err == nil {
				t.Errorf("NewParser(%q) accepted", extra)
			}
		})
	}
	var nilParser *Parser
	if nilParser.Known("custom") || !nilParser.Known("gh") || len(nilParser.Extra()) != 0 {
		t.Error("a nil Parser must know the built-in providers only")
	}
}
