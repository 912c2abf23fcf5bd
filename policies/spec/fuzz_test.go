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
	} {
		f.Add(s)
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
	})
}
