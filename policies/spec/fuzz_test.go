package spec

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input makes the parsers panic, that every
// failure is a typed *Error, and that identities are stable: parsing the
// Repo of a parsed spec again gives the same Repo.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"gh/jupyterlab/jupyterlab-demo/HEAD",
		"gh/a/b%252D/c",
		"git/https%3A%2F%2Fgithub.com%2Fo%2Fr.git/HEAD",
		"git/git%40github.com%3Ao%2Fr/HEAD",
		"git/https%3A%2F%2F%5B%3A%3A1%5D%3A99%2Fr/x",
		"gl/a%2Fb/main",
		"gist/u/abc/def",
		"zenodo/10.5281/zenodo.1",
		"figshare/10.6084/m9.figshare.1.v2",
		"hydroshare/0123456789abcdef0123456789abcdef",
		"ckan/https%3A%2F%2Fx%2Fdataset%2Fy%2Fhistory%2Fz",
		"%", "gh/%%%/%/%", "git/%", "/build/", "v2/gh/a/b/c",
		"custom/Org/Repo%2Dx/HEAD", "custom/%2565vil", "custom/a%00b", "v2/custom/x",
	} {
		f.Add(s)
	}
	extra, err := NewParser("custom")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sp, err := Parse(in)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Parse(%q) returned %T, want *Error", in, err)
		}
		if err == nil {
			_ = sp.BuildKey()
			_ = sp.Spellings()
			r, err := ParseRepoURL("https://" + string(sp.Repo))
			if err != nil {
				t.Fatalf("ParseRepoURL(https:// + Parse(%q).Repo = %q): %v", in, sp.Repo, err)
			}
			if r != sp.Repo {
				t.Fatalf("identity not stable: Parse(%q).Repo = %q, as a URL it is %q", in, sp.Repo, r)
			}
		}
		if _, err := ParseRepoURL(in); err != nil && !errors.As(err, &e) {
			t.Fatalf("ParseRepoURL(%q) returned %T, want *Error", in, err)
		}
		if _, err := ParseRequest(in); err != nil && !errors.As(err, &e) {
			t.Fatalf("ParseRequest(%q) returned %T, want *Error", in, err)
		}
		_, _ = ParseRepo(in)

		// An extra provider: the same contract, and a built-in spec
		// parses exactly as without the Parser.
		xsp, xerr := extra.Parse(in)
		if xerr != nil && !errors.As(xerr, &e) {
			t.Fatalf("Parser.Parse(%q) returned %T, want *Error", in, xerr)
		}
		if xerr == nil && xsp.Provider != "custom" && (err != nil || xsp != sp) {
			t.Fatalf("Parser.Parse(%q) = %+v, %v; the package Parse gives %+v, %v", in, xsp, xerr, sp, err)
		}
		if xerr == nil && xsp.Provider == "custom" && (xsp.BuildKey() != "custom/"+xsp.Raw || !printable(string(xsp.Repo))) {
			t.Fatalf("Parser.Parse(%q) = key %q repo %q, want the raw spec as key and a printable identity", in, xsp.BuildKey(), xsp.Repo)
		}
		if _, err := extra.ParseRequest(in); err != nil && !errors.As(err, &e) {
			t.Fatalf("Parser.ParseRequest(%q) returned %T, want *Error", in, err)
		}
	})
}
