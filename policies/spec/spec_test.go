package spec

import (
	"errors"
	"strings"
	"testing"
)

const demo = Repo("github.com/jupyterlab/jupyterlab-demo")

func TestParseYieldsIdentityRefAndBuildKey(t *testing.T) {
	tests := map[string]struct {
		in       string
		repo     Repo
		ref      string
		buildKey string
	}{
		"a plain GitHub spec": {
			in: "gh/jupyterlab/jupyterlab-demo/HEAD", repo: demo, ref: "HEAD",
			buildKey: "gh/jupyterlab/jupyterlab-demo/HEAD",
		},
		"a GitHub ref may contain slashes": {
			in: "gh/org/repo/feature/x", repo: "github.com/org/repo", ref: "feature/x",
			buildKey: "gh/org/repo/feature/x",
		},
		"GitHub case is kept in the build key but not the identity": {
			in: "gh/JupyterLab/JupyterLab-Demo/HEAD", repo: demo, ref: "HEAD",
			buildKey: "gh/JupyterLab/JupyterLab-Demo/HEAD",
		},
		"a .git suffix is dropped like BinderHub does": {
			in: "gh/jupyterlab/jupyterlab-demo.git/HEAD", repo: demo, ref: "HEAD",
			buildKey: "gh/jupyterlab/jupyterlab-demo/HEAD",
		},
		"percent-encoding is decoded in the build key": {
			in: "gh/jupyterlab/jupyterlab%2Ddemo/main%2Fx", repo: demo, ref: "main/x",
			buildKey: "gh/jupyterlab/jupyterlab-demo/main/x",
		},
		"trailing slashes are stripped": {
			in: "gh/jupyterlab/jupyterlab-demo/HEAD///", repo: demo, ref: "HEAD",
			buildKey: "gh/jupyterlab/jupyterlab-demo/HEAD",
		},
		"a leading /build/ is accepted": {
			in: "/build/gh/jupyterlab/jupyterlab-demo/HEAD", repo: demo, ref: "HEAD",
			buildKey: "gh/jupyterlab/jupyterlab-demo/HEAD",
		},
		"a git spec of a GitHub https URL is the GitHub repository": {
			in: "git/https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/HEAD", repo: demo, ref: "HEAD",
			buildKey: "git/https://github.com/JupyterLab/jupyterlab-demo.git/HEAD",
		},
		"a git spec of a self-hosted server keeps its host and path": {
			in: "git/https%3A%2F%2Fgit.example.org%2FTeam%2FRepo.git/v1", repo: "git.example.org/team/repo", ref: "v1",
			buildKey: "git/https://git.example.org/Team/Repo.git/v1",
		},
		"a git spec with a non-default port keeps the port": {
			in: "git/https%3A%2F%2Fgit.example.org%3A8443%2Frepo/v1", repo: "git.example.org:8443/repo", ref: "v1",
			buildKey: "git/https://git.example.org:8443/repo/v1",
		},
		"a GitLab namespace is decoded and lowercased": {
			in: "gl/Group%2FSub%2FProject/main", repo: "gitlab.com/group/sub/project", ref: "main",
			buildKey: "gl/Group/Sub/Project/main",
		},
		"a gist is identified by its id alone": {
			in: "gist/alice/8f7c2f0341ef4180b0dbe97f59130756", repo: "gist.github.com/8f7c2f0341ef4180b0dbe97f59130756",
			buildKey: "gist/8f7c2f0341ef4180b0dbe97f59130756/HEAD",
		},
		"a gist's master, main and HEAD are one build": {
			in: "gist/alice/abc123/master", repo: "gist.github.com/abc123", ref: "master",
			buildKey: "gist/abc123/HEAD",
		},
		"a zenodo DOI": {
			in: "zenodo/10.5281/zenodo.3242074", repo: "doi.org/10.5281/zenodo.3242074",
			buildKey: "zenodo/10.5281/zenodo.3242074",
		},
		"a figshare version is the ref": {
			in: "figshare/10.6084/m9.figshare.9782777.v1", repo: "doi.org/10.6084/m9.figshare.9782777", ref: "v1",
			buildKey: "figshare/10.6084/m9.figshare.9782777.v1",
		},
		"a dataverse DOI is lowercased": {
			in: "dataverse/10.7910/DVN/TJCLKP", repo: "doi.org/10.7910/dvn/tjclkp",
			buildKey: "dataverse/10.7910/dvn/tjclkp",
		},
		"a hydroshare URL is its resource id": {
			in:       "hydroshare/https%3A%2F%2Fwww.hydroshare.org%2Fresource%2Fb8f6eae9d89241cf8b5904033460af61%2F",
			repo:     "hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61",
			buildKey: "hydroshare/b8f6eae9d89241cf8b5904033460af61",
		},
		"a CKAN dataset URL under a prefix with a history ref": {
			in:   "ckan/https%3A%2F%2Fdemo.ckan.org%2Fportal%2Fdataset%2Fmy-data%2Fhistory%2Fabc",
			repo: "demo.ckan.org/portal/dataset/my-data", ref: "abc",
			buildKey: "ckan/https://demo.ckan.org/portal/dataset/my-data/history/abc",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if sp.Repo != tc.repo || sp.Ref != tc.ref || sp.BuildKey() != tc.buildKey {
				t.Errorf("Parse(%q) = repo %q ref %q key %q, want repo %q ref %q key %q",
					tc.in, sp.Repo, sp.Ref, sp.BuildKey(), tc.repo, tc.ref, tc.buildKey)
			}
			if !strings.HasPrefix(sp.Path(), "/build/"+sp.Provider+"/") {
				t.Errorf("Path() = %q", sp.Path())
			}
		})
	}
}

// Every spelling of jupyterlab/jupyterlab-demo must give one identity.
func TestEveryEvasionSpellingGivesTheSameRepo(t *testing.T) {
	tests := map[string]string{
		"the plain spec":                          "gh/jupyterlab/jupyterlab-demo/HEAD",
		"upper case owner and name":               "gh/JUPYTERLAB/JupyterLab-Demo/HEAD",
		"a .git suffix":                           "gh/jupyterlab/jupyterlab-demo.git/HEAD",
		"an upper case .GIT suffix":               "gh/jupyterlab/jupyterlab-demo.GIT/HEAD",
		"a doubled .git suffix":                   "gh/jupyterlab/jupyterlab-demo.git.git/HEAD",
		"a percent-encoded dash":                  "gh/jupyterlab/jupyterlab%2Ddemo/HEAD",
		"a percent-encoded letter in the owner":   "gh/%6Aupyterlab/jupyterlab-demo/HEAD",
		"a double-encoded dash":                   "gh/jupyterlab/jupyterlab%252Ddemo/HEAD",
		"a triple-encoded dash":                   "gh/jupyterlab/jupyterlab%25252ddemo/HEAD",
		"a trailing slash":                        "gh/jupyterlab/jupyterlab-demo/HEAD/",
		"another ref":                             "gh/jupyterlab/jupyterlab-demo/0123456789abcdef0123456789abcdef01234567",
		"a ref with slashes":                      "gh/jupyterlab/jupyterlab-demo/refs/heads/main",
		"git https clone URL":                     "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git https clone URL with .git":           "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo.git/main",
		"git URL in lower-case hex escapes":       "git/https%3a%2f%2fgithub.com%2fjupyterlab%2fjupyterlab-demo/HEAD",
		"git URL with encoded slashes doubled":    "git/https%253A%252F%252Fgithub.com%252Fjupyterlab%252Fjupyterlab-demo/HEAD",
		"git URL in mixed case":                   "git/HTTPS%3A%2F%2FGitHub.COM%2FJupyterLab%2FJupyterLab-Demo/HEAD",
		"git http URL":                            "git/http%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git git:// URL":                          "git/git%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo.git/HEAD",
		"git ssh:// URL":                          "git/ssh%3A%2F%2Fgit%40github.com%2Fjupyterlab%2Fjupyterlab-demo.git/HEAD",
		"git scp-like address":                    "git/git%40github.com%3Ajupyterlab%2Fjupyterlab-demo.git/HEAD",
		"git www.github.com":                      "git/https%3A%2F%2Fwww.github.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git URL with port and user info":         "git/https%3A%2F%2Fuser%3Apw%40github.com%3A443%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git URL with a trailing dot host":        "git/https%3A%2F%2Fgithub.com.%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git URL with a trailing slash":           "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo%2F/HEAD",
		"git URL with doubled slashes":            "git/https%3A%2F%2Fgithub.com%2F%2Fjupyterlab%2F%2Fjupyterlab-demo/HEAD",
		"git URL pointing into a tree view":       "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo%2Ftree%2Fmain/HEAD",
		"git URL with an encoded dash in path":    "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab%252Ddemo/HEAD",
		"git URL with a query":                    "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo%3Fx%3D1/HEAD",
		"git URL with a percent-encoded host":     "git/https%3A%2F%2Fgit%2568ub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git URL with a hostname in upper case":   "git/https%3A%2F%2FGITHUB.COM%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"git URL with a git ref that has slashes": "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/a/b/c",
		"git URL with dot segments":               "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fx%2F..%2F.%2Fjupyterlab-demo/HEAD",
		"git URL with encoded dot segments":       "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fx%2F%252e%252e%2Fjupyterlab-demo/HEAD",
		"git URL on GitHub's SSH-over-443 host":   "git/ssh%3A%2F%2Fgit%40ssh.github.com%3A443%2Fjupyterlab%2Fjupyterlab-demo.git/HEAD",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if sp.Repo != demo {
				t.Errorf("Parse(%q).Repo = %q, want %q", in, sp.Repo, demo)
			}
		})
	}
}

func TestNearMissesAreOtherRepos(t *testing.T) {
	tests := map[string]string{
		"a fork":                              "gh/someone/jupyterlab-demo/HEAD",
		"a longer name with the prefix":       "gh/jupyterlab/jupyterlab-demo2/HEAD",
		"a shorter name":                      "gh/jupyterlab/jupyterlab-dem/HEAD",
		"the same name under an owner prefix": "gh/jupyterlab2/jupyterlab-demo/HEAD",
		"another owner":                       "gh/binder-examples/requirements/HEAD",
		"a name with a suffix after .git":     "gh/jupyterlab/jupyterlab-demo.gitx/HEAD",
		"a GitLab project of that name":       "gl/jupyterlab%2Fjupyterlab-demo/HEAD",
		"a self-hosted mirror":                "git/https%3A%2F%2Fgit.example.org%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
		"a GitHub look-alike host":            "git/https%3A%2F%2Fgithub.com.evil.org%2Fjupyterlab%2Fjupyterlab-demo/HEAD",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if sp.Repo == demo {
				t.Errorf("Parse(%q).Repo = %q, must not be the banned repository", in, sp.Repo)
			}
		})
	}
}

func TestInvalidSpecsAreTypedErrors(t *testing.T) {
	tests := map[string]struct {
		in     string
		reason string // substring of the user-facing reason
	}{
		"an empty spec":                           {"", "empty"},
		"no provider":                             {"jupyterlab", "<provider>/<spec>"},
		"an unknown provider":                     {"bb/org/repo/HEAD", "no provider found"},
		"a provider in the wrong case":            {"GH/org/repo/HEAD", "no provider found"},
		"a GitHub spec without a ref":             {"gh/org/repo", `Did you mean "org/repo/HEAD"?`},
		"a GitHub spec with only an owner":        {"gh/org", "user/repo/ref"},
		"a GitHub owner with a slash":             {"gh/org%2Fx/repo/HEAD", "GitHub owner"},
		"an empty GitHub repository":              {"gh/org//HEAD", "GitHub repository name"},
		"a GitHub repository that is only .git":   {"gh/org/.git/HEAD", "GitHub repository name"},
		"a dot segment as the repository":         {"gh/jupyterlab/./jupyterlab-demo/HEAD", "GitHub repository name"},
		"a dot-dot segment as the owner":          {"gh/../jupyterlab/jupyterlab-demo/HEAD", "GitHub owner"},
		"a query string":                          {"gh/org/repo/HEAD?x=1", "without query"},
		"a space":                                 {"gh/org/re po/HEAD", "space"},
		"a git spec without ref":                  {"git/https%3A%2F%2Fexample.org%2Frepo", "<url-encoded clone URL>/<ref>"},
		"a git spec with a file URL":              {"git/file%3A%2F%2F%2Fetc%2Fpasswd/HEAD", "protocol file"},
		"a git spec that is not a URL":            {"git/example/HEAD", "not a repository URL"},
		"a git spec of github.com without a repo": {"git/https%3A%2F%2Fgithub.com%2Forg/HEAD", "owner and a repository"},
		"a gl spec without a ref":                 {"gl/group%2Fproject", "<url-encoded namespace>/<ref>"},
		"a gist without an id":                    {"gist/alice", "user/gist-id"},
		"a zenodo spec that is not a DOI":         {"zenodo/record/123", "DOI"},
		"a hydroshare spec without an id":         {"hydroshare/abc", "not recognized"},
		"a CKAN URL that is not a dataset":        {"ckan/https%3A%2F%2Fdemo.ckan.org%2Fgroup%2Fx", "/dataset/"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error = %v, want *Error", tc.in, err)
			}
			if e.Input != tc.in || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("Parse(%q) = %+v, want input echoed and reason containing %q", tc.in, e, tc.reason)
			}
		})
	}
}

func TestParseRepoURLMatchesTheSpecIdentity(t *testing.T) {
	tests := map[string]struct {
		url  string
		repo Repo
	}{
		"BinderHub's GitHub repo_url":   {"https://github.com/jupyterlab/jupyterlab-demo", demo},
		"a GitHub clone URL with .git":  {"https://github.com/JupyterLab/jupyterlab-demo.git", demo},
		"an scp-like GitHub address":    {"git@github.com:jupyterlab/jupyterlab-demo.git", demo},
		"a GitHub ssh URL":              {"ssh://git@github.com/jupyterlab/jupyterlab-demo", demo},
		"a GitHub URL with a tree path": {"https://github.com/jupyterlab/jupyterlab-demo/tree/main/notebooks", demo},
		"BinderHub's gist repo_url": {"https://gist.github.com/alice/8f7c2f0341ef4180b0dbe97f59130756.git",
			"gist.github.com/8f7c2f0341ef4180b0dbe97f59130756"},
		"BinderHub's GitLab repo_url":         {"https://gitlab.com/Group/Project.git", "gitlab.com/group/project"},
		"a GitLab URL with a tree view":       {"https://gitlab.com/group/sub/project/-/tree/main", "gitlab.com/group/sub/project"},
		"a zenodo DOI as repo2docker gets it": {"10.5281/zenodo.3242074", "doi.org/10.5281/zenodo.3242074"},
		"a DOI URL":                           {"https://doi.org/10.5281/ZENODO.3242074", "doi.org/10.5281/zenodo.3242074"},
		"a zenodo record URL":                 {"https://zenodo.org/records/3242074", "doi.org/10.5281/zenodo.3242074"},
		"a versioned figshare DOI":            {"10.6084/m9.figshare.9782777.v3", "doi.org/10.6084/m9.figshare.9782777"},
		"BinderHub's hydroshare repo_url": {"https://www.hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61",
			"hydroshare.org/resource/b8f6eae9d89241cf8b5904033460af61"},
		"a CKAN dataset URL":    {"https://demo.ckan.org/dataset/my-data?activity_id=1", "demo.ckan.org/dataset/my-data"},
		"a self-hosted git URL": {"https://git.example.org/team/repo.git", "git.example.org/team/repo"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := ParseRepoURL(tc.url)
			if err != nil {
				t.Fatalf("ParseRepoURL(%q): %v", tc.url, err)
			}
			if r != tc.repo {
				t.Errorf("ParseRepoURL(%q) = %q, want %q", tc.url, r, tc.repo)
			}
		})
	}
}

func TestParseRepoURLRejectsWhatIsNoRepository(t *testing.T) {
	for name, in := range map[string]string{
		"an empty value":        "",
		"a file URL":            "file:///etc/passwd",
		"a bare word":           "jupyterlab-demo",
		"a GitHub owner only":   "https://github.com/jupyterlab",
		"a host without a path": "https://git.example.org/",
	} {
		t.Run(name, func(t *testing.T) {
			var e *Error
			if _, err := ParseRepoURL(in); !errors.As(err, &e) {
				t.Errorf("ParseRepoURL(%q) error = %v, want *Error", in, err)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	tests := map[string]struct {
		in      string
		repo    Repo
		ref     string
		wantErr bool
	}{
		"BINDER_REQUEST":                 {in: "v2/gh/jupyterlab/jupyterlab-demo/HEAD", repo: demo, ref: "HEAD"},
		"BINDER_PERSISTENT_REQUEST":      {in: "v2/gh/jupyterlab/jupyterlab-demo/1479e02", repo: demo, ref: "1479e02"},
		"with a leading slash and query": {in: "/v2/gh/jupyterlab/jupyterlab-demo/HEAD?urlpath=lab", repo: demo, ref: "HEAD"},
		"a git request":                  {in: "v2/git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD", repo: demo, ref: "HEAD"},
		"without v2":                     {in: "gh/jupyterlab/jupyterlab-demo/HEAD", wantErr: true},
		"with a bad spec":                {in: "v2/gh/jupyterlab", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := ParseRequest(tc.in)
			if tc.wantErr {
				var e *Error
				if !errors.As(err, &e) || e.Input != tc.in {
					t.Fatalf("ParseRequest(%q) error = %v, want *Error naming the input", tc.in, err)
				}
				return
			}
			if err != nil || sp.Repo != tc.repo || sp.Ref != tc.ref {
				t.Errorf("ParseRequest(%q) = %q %q %v, want %q %q", tc.in, sp.Repo, sp.Ref, err, tc.repo, tc.ref)
			}
		})
	}
}

func TestParseRepoAcceptsEveryWayToWriteABannedRepo(t *testing.T) {
	tests := map[string]struct {
		in   string
		repo Repo
	}{
		"a gh spec without ref":       {"gh/jupyterlab/jupyterlab-demo", demo},
		"a gh spec with a ref":        {"gh/jupyterlab/jupyterlab-demo/HEAD", demo},
		"a git spec without ref":      {"git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo.git", demo},
		"a gl spec without ref":       {"gl/group%2Fproject", "gitlab.com/group/project"},
		"a zenodo DOI":                {"zenodo/10.5281/zenodo.3242074", "doi.org/10.5281/zenodo.3242074"},
		"a URL":                       {"https://github.com/jupyterlab/jupyterlab-demo", demo},
		"an identity":                 {"github.com/JupyterLab/jupyterlab-demo", demo},
		"an identity of another host": {"git.example.org/team/repo", "git.example.org/team/repo"},
		"an scp-like address":         {"git@github.com:jupyterlab/jupyterlab-demo.git", demo},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := ParseRepo(tc.in)
			if err != nil || r != tc.repo {
				t.Errorf("ParseRepo(%q) = %q, %v; want %q", tc.in, r, err, tc.repo)
			}
		})
	}
	if _, err := ParseRepo("jupyterlab-demo"); err == nil {
		t.Error("ParseRepo of a bare name: want an error")
	}
}

func TestSpellingsCrossProviders(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []Spelling // must all be present
	}{
		"a gh spec is also a git URL": {
			in: "gh/JupyterLab/jupyterlab%2Ddemo/HEAD",
			want: []Spelling{
				{ProviderGitHub, "JupyterLab/jupyterlab%2Ddemo/HEAD", false},
				{ProviderGitHub, "jupyterlab/jupyterlab-demo/HEAD", true},
				{ProviderGit, "https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD", true},
			},
		},
		"a git spec of GitHub is also a gh spec": {
			in: "git/git%40github.com%3AJupyterLab%2Fjupyterlab-demo.git/main",
			want: []Spelling{
				{ProviderGit, "git%40github.com%3AJupyterLab%2Fjupyterlab-demo.git/main", false},
				{ProviderGit, "https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/main", true},
				{ProviderGitHub, "jupyterlab/jupyterlab-demo/main", true},
			},
		},
		"a gl spec is also a git URL": {
			in: "gl/Group%2FProject/main",
			want: []Spelling{
				{ProviderGitLab, "group%2Fproject/main", true},
				{ProviderGit, "https%3A%2F%2Fgitlab.com%2Fgroup%2Fproject/main", true},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sp, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := sp.Spellings()
			for _, w := range tc.want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("Spellings(%q) = %+v, missing %+v", tc.in, got, w)
				}
			}
		})
	}
}

func TestShownCutsOnARuneBoundary(t *testing.T) {
	tests := map[string]struct {
		in   string
		max  int
		want string
	}{
		"short text is kept":                {in: "gh/org/repo/HEAD", max: 20, want: "gh/org/repo/HEAD"},
		"exactly max is kept":               {in: "abcd", max: 4, want: "abcd"},
		"long text is cut with an ellipsis": {in: "abcdef", max: 4, want: "abcd…"},
		"a rune is never split":             {in: "ab€cd", max: 3, want: "ab…"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Shown(tc.in, tc.max); got != tc.want {
				t.Errorf("Shown(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}
