package fakebinder

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := map[string]struct {
		provider, spec string
		wantRepoURL    string
		wantPersist    string // prefix of ResolvedSpec
		wantErr        string // substring of the failed event's message
	}{
		"a GitHub spec names user, repo and ref": {
			provider: "gh", spec: "binder-examples/requirements/HEAD",
			wantRepoURL: "https://github.com/binder-examples/requirements", wantPersist: "binder-examples/requirements/",
		},
		"a GitHub ref may contain slashes": {
			provider: "gh", spec: "org/repo/feature/x",
			wantRepoURL: "https://github.com/org/repo",
		},
		"a .git suffix on a GitHub repo is stripped": {
			provider: "gh", spec: "org/repo.git/HEAD",
			wantRepoURL: "https://github.com/org/repo", wantPersist: "org/repo/",
		},
		"a GitHub spec without a ref is refused with BinderHub's hint": {
			provider: "gh", spec: "org/repo", wantErr: `Did you mean "org/repo/HEAD"?`,
		},
		"a GitHub spec of one part is refused": {
			provider: "gh", spec: "org", wantErr: `Spec is not of the form "user/repo/ref", provided: "org".`,
		},
		"a gist ref is optional": {
			provider: "gist", spec: "user/0123abcd", wantRepoURL: "https://gist.github.com/user/0123abcd.git",
		},
		"a git spec carries an encoded clone URL": {
			provider: "git", spec: "https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/HEAD",
			wantRepoURL: "https://github.com/JupyterLab/jupyterlab-demo.git", wantPersist: "https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/",
		},
		"a git URL with another protocol is refused": {
			provider: "git", spec: "file%3A%2F%2F%2Fetc/HEAD", wantErr: "Unsupported git url file:///etc",
		},
		"a git spec without a ref is refused": {
			provider: "git", spec: "https%3A%2F%2Fexample.org%2Fr", wantErr: "not enough values to unpack",
		},
		"a GitLab spec carries an encoded namespace": {
			provider: "gl", spec: "group%2Fsub%2Frepo/main", wantRepoURL: "https://gitlab.com/group/sub/repo.git",
		},
		"a Zenodo spec is a DOI": {
			provider: "zenodo", spec: "10.5281/zenodo.3242074", wantRepoURL: "10.5281/zenodo.3242074", wantPersist: "10.5281/zenodo.",
		},
		"a Zenodo spec that is no DOI does not resolve": {
			provider: "zenodo", spec: "not-a-doi", wantErr: "Could not resolve ref",
		},
		"a Hydroshare spec needs a resource id": {
			provider: "hydroshare", spec: "nothex", wantErr: "not recognized",
		},
		"an unknown provider is refused with BinderHub's message": {
			provider: "svn", spec: "a/b/c", wantErr: "No provider found for prefix svn",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseTarget(tc.provider, tc.spec)
			if tc.wantErr != "" {
				var se *specError
				if !errors.As(err, &se) || !strings.Contains(se.Message, tc.wantErr) {
					t.Fatalf("parseTarget(%q, %q) error = %v; want a spec error containing %q", tc.provider, tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTarget(%q, %q): %v", tc.provider, tc.spec, err)
			}
			if tc.wantRepoURL != "" && got.RepoURL != tc.wantRepoURL {
				t.Errorf("RepoURL = %q; want %q", got.RepoURL, tc.wantRepoURL)
			}
			if !strings.HasPrefix(got.ResolvedSpec, tc.wantPersist) {
				t.Errorf("ResolvedSpec = %q; want prefix %q", got.ResolvedSpec, tc.wantPersist)
			}
			if !strings.HasPrefix(got.Image, imagePrefix) || strings.ToLower(got.Image) != got.Image {
				t.Errorf("Image = %q; want a lowercase name under %q", got.Image, imagePrefix)
			}
		})
	}
}

func TestImageIdentity(t *testing.T) {
	image := func(provider, spec string) string {
		t.Helper()
		tg, err := parseTarget(provider, spec)
		if err != nil {
			t.Fatalf("parseTarget(%q, %q): %v", provider, spec, err)
		}
		return tg.Image
	}
	tests := map[string]struct {
		a, b [2]string
		same bool
	}{
		"the same spec is the same image": {
			a: [2]string{"gh", "org/repo/HEAD"}, b: [2]string{"gh", "org/repo/HEAD"}, same: true,
		},
		"a different case builds separately, as in BinderHub": {
			a: [2]string{"gh", "Org/Repo/HEAD"}, b: [2]string{"gh", "org/repo/HEAD"},
		},
		"a different ref is a different image": {
			a: [2]string{"gh", "org/repo/HEAD"}, b: [2]string{"gh", "org/repo/v1"},
		},
		"a .git suffix does not change the image": {
			a: [2]string{"gh", "org/repo.git/HEAD"}, b: [2]string{"gh", "org/repo/HEAD"}, same: true,
		},
		"a full commit hash is its own resolved ref": {
			a:    [2]string{"gh", "org/repo/0123456789abcdef0123456789abcdef01234567"},
			b:    [2]string{"gh", "org/repo/0123456789abcdef0123456789abcdef01234567"},
			same: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := image(tc.a[0], tc.a[1]), image(tc.b[0], tc.b[1])
			if (a == b) != tc.same {
				t.Errorf("images %q and %q: same = %v; want %v", a, b, a == b, tc.same)
			}
		})
	}
}
