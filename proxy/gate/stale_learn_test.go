package gate

import (
	"net/url"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

const sha = "1479e02b30e6d1a9e2cb8e3cb2f5d1a5e4a8c1f0"

func TestResolvedTargetLearnsOnlyAMovingRefOfTheSameRepository(t *testing.T) {
	tests := map[string]struct {
		p    sse.Payload
		tag  string
		spec string // the launch's own provider spec
		want string // "" = nothing learnt
	}{
		"HEAD resolved to a commit (BinderHub's ready event)": {
			p:    sse.Payload{BinderRequest: "v2/gh/binder-examples/octave/HEAD", BinderPersistentRequest: "v2/gh/binder-examples/octave/" + sha},
			spec: "gh/binder-examples/octave/HEAD", want: "gh/binder-examples/octave/" + sha,
		},
		"a branch with a slash": {
			p:    sse.Payload{BinderRequest: "v2/gh/org/repo/feature/x", BinderPersistentRequest: "v2/gh/org/repo/" + sha},
			spec: "gh/org/repo/feature/x", want: "gh/org/repo/" + sha,
		},
		"a git URL keeps its percent-encoding": {
			p:    sse.Payload{BinderRequest: "v2/git/https%3A%2F%2Fexample.org%2Frepo.git/HEAD", BinderPersistentRequest: "v2/git/https%3A%2F%2Fexample.org%2Frepo.git/" + sha},
			spec: "git/https%3A%2F%2Fexample.org%2Frepo.git/HEAD", want: "git/https%3A%2F%2Fexample.org%2Frepo.git/" + sha,
		},
		"a ref that names a commit learns nothing": {
			p:    sse.Payload{BinderRequest: "v2/gh/org/repo/" + sha, BinderPersistentRequest: "v2/gh/org/repo/" + sha},
			spec: "gh/org/repo/" + sha,
		},
		"another repository is refused": {
			p:    sse.Payload{BinderRequest: "v2/gh/org/repo/HEAD", BinderPersistentRequest: "v2/gh/evil/repo/" + sha},
			spec: "gh/org/repo/HEAD",
		},
		"another provider is refused": {
			p:    sse.Payload{BinderRequest: "v2/gh/org/repo/HEAD", BinderPersistentRequest: "v2/git/https%3A%2F%2Fgithub.com%2Forg%2Frepo/" + sha},
			spec: "gh/org/repo/HEAD",
		},
		"an unreadable persistent request is refused": {
			p:    sse.Payload{BinderRequest: "v2/gh/org/repo/HEAD", BinderPersistentRequest: "gh/org/repo/" + sha},
			spec: "gh/org/repo/HEAD",
		},
		"without binder_request the launch's own spec is the request": {
			p:    sse.Payload{BinderPersistentRequest: "v2/gh/org/repo/" + sha},
			spec: "gh/org/repo/HEAD", want: "gh/org/repo/" + sha,
		},
		"without binder_persistent_request the tag of built's imageName": {
			p: sse.Payload{BinderRequest: "v2/gh/org/repo/HEAD"}, tag: sha,
			spec: "gh/org/repo/HEAD", want: "gh/org/repo/" + sha,
		},
		"a tag equal to the ref learns nothing": {
			p: sse.Payload{BinderRequest: "v2/gh/org/repo/" + sha}, tag: sha,
			spec: "gh/org/repo/" + sha,
		},
		"a tag is not enough for providers whose resolved spec it does not give": {
			p: sse.Payload{BinderRequest: "v2/gl/group%2Fproject/HEAD"}, tag: sha,
			spec: "gl/group%2Fproject/HEAD",
		},
		"neither learns nothing": {
			p: sse.Payload{BinderRequest: "v2/gh/org/repo/HEAD"}, spec: "gh/org/repo/HEAD",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := resolvedTarget(tc.p, tc.tag, tc.spec)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("resolvedTarget = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"gcr.io/binder/r2d-org-repo-e61acf:" + sha:             sha,
		"registry.example.org:5000/r2d-org-repo-e61acf:" + sha: sha,
		"registry.example.org:5000/r2d-org-repo-e61acf":        "",
		"r2d-org-repo": "",
		"":             "",
	} {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLastGoodIsBoundedAndAgesOut(t *testing.T) {
	u, _ := url.Parse("http://binder.invalid")
	g, err := New(Config{Upstream: u, Policies: StaticPolicies(Launch{}, Global{}), LastGoodSpecs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	t0 := time.Now()
	g.lastGood.learn("gh/a/r/HEAD", "gh/a/r/"+sha, t0)
	g.lastGood.learn("gh/b/r/HEAD", "gh/b/r/"+sha, t0.Add(time.Minute))
	g.lastGood.learn("gh/a/r/HEAD", "gh/a/r/"+sha, t0.Add(2*time.Minute)) // seen again: a is now the fresher
	g.lastGood.learn("gh/c/r/HEAD", "gh/c/r/"+sha, t0.Add(3*time.Minute)) // full: b, seen longest ago, goes
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.lastGood.m) != 2 || g.lastGood.m["gh/b/r/HEAD"] != nil {
		t.Fatalf("kept %v, want a and c", g.lastGood.m)
	}
	a := g.lastGood.m["gh/a/r/HEAD"]
	if !a.since.Equal(t0) || !a.seen.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("a: since %v seen %v; want since the first ready, seen the last", a.since, a.seen)
	}
	now := t0.Add(2*time.Minute + time.Hour)
	if g.lastGood.usable("gh/a/r/HEAD", "gh/a/r/HEAD", time.Hour, now) == nil {
		t.Error("a commit seen exactly maxAge ago was refused")
	}
	if g.lastGood.usable("gh/a/r/HEAD", "gh/a/r/HEAD", time.Hour-time.Second, now) != nil {
		t.Error("a commit seen longer than maxAge ago was offered")
	}
	if g.lastGood.usable("gh/a/r/HEAD", "gh/a/r/"+sha, time.Hour, now) != nil {
		t.Error("a launch of the commit itself was offered that commit")
	}
}
