package fakebinder

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// Moving HEAD is a push: the same launch URL builds the new commit, while
// the old commit's image stays and a launch of that commit finds it
// without a build, as BinderHub's BuildHandler does with a registry that
// still holds it.
func TestMovedHeadBuildsTheNewCommitAndTheOldOneStaysBuilt(t *testing.T) {
	ts := startServer(t, fast())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	head := "/build/gh/org/repo/HEAD"
	ready := func(path string) sse.Payload {
		t.Helper()
		r := ts.launch(ctx, path, nil)
		if r.Err != nil || r.last().Phase != sse.PhaseReady {
			t.Fatalf("%s: %v, phases %v", path, r.Err, r.phases())
		}
		return r.last()
	}

	if err := ts.SetRef("gh/org/repo/HEAD", commitA, 0); err != nil {
		t.Fatal(err)
	}
	a := ready(head)
	if a.BinderPersistentRequest != "v2/gh/org/repo/"+commitA || !strings.HasSuffix(a.Image, ":"+commitA) || a.BinderRequest != "v2/gh/org/repo/HEAD" {
		t.Fatalf("HEAD at A: persistent %q image %q request %q", a.BinderPersistentRequest, a.Image, a.BinderRequest)
	}
	if st := ts.Stats(); st.BuildsStarted != 1 {
		t.Fatalf("builds started = %d, want 1", st.BuildsStarted)
	}

	// A POST to /_sim/refs is the same move, with a long build for B.
	resp, err := http.Post(ts.URL+"/_sim/refs", "application/json",
		strings.NewReader(`{"spec": "gh/org/repo/HEAD", "commit": "`+commitB+`", "build_time": "2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/refs: %s", resp.Status)
	}
	bch := make(chan launchResult, 1)
	start := time.Now()
	go func() { bch <- ts.launch(ctx, head, nil) }()
	ts.waitFor(t, "the build of B", func(st Stats) bool { return st.BuildsInProgress == 1 })

	old := ts.launch(ctx, "/build/gh/org/repo/"+commitA, nil)
	if old.Err != nil || old.last().Phase != sse.PhaseReady || old.Events[0].Phase != sse.PhaseBuilt || old.Events[0].Message != "Found built image, launching...\n" {
		t.Fatalf("launch of A while B builds: %v, events %+v", old.Err, old.Events)
	}
	if got := old.last().BinderPersistentRequest; got != "v2/gh/org/repo/"+commitA {
		t.Errorf("launch of A: persistent %q", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the launch of A took until %v into B's 2 s build", d)
	}
	b := <-bch
	if b.Err != nil || b.last().BinderPersistentRequest != "v2/gh/org/repo/"+commitB || time.Since(start) < 2*time.Second {
		t.Fatalf("HEAD at B: %v, phases %v, last %+v after %v", b.Err, b.phases(), b.last(), time.Since(start))
	}
	if st := ts.Stats(); st.BuildsStarted != 2 || st.BuiltImages != 2 {
		t.Errorf("builds started %d, built images %d; want 2 and 2 (A and B)", st.BuildsStarted, st.BuiltImages)
	}
	if p := ready(head); p.BinderPersistentRequest != "v2/gh/org/repo/"+commitB || ts.Stats().BuildsStarted != 2 {
		t.Errorf("HEAD after B's build: %q, builds %d", p.BinderPersistentRequest, ts.Stats().BuildsStarted)
	}
}

func TestSetRefRefusesWhatCannotMove(t *testing.T) {
	srv, err := New(fast())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tests := map[string]struct {
		spec, commit string
		build        time.Duration
		want         string
	}{
		"a commit":              {spec: "gh/org/repo/" + commitA, commit: commitB, want: "names a commit"},
		"a DOI":                 {spec: "zenodo/10.5281/zenodo.3242074", commit: commitB, want: "no ref that moves"},
		"a short sha":           {spec: "gh/org/repo/HEAD", commit: "abc123", want: "not a full"},
		"an upper-case sha":     {spec: "gh/org/repo/HEAD", commit: strings.ToUpper(commitB), want: "not a full"},
		"no ref":                {spec: "gh/org/repo", commit: commitB, want: "user/repo/ref"},
		"an unknown provider":   {spec: "bb/org/repo/HEAD", commit: commitB, want: "No provider"},
		"not a spec":            {spec: "HEAD", commit: commitB, want: "<provider>/<spec>"},
		"a negative build time": {spec: "gh/org/repo/HEAD", commit: commitB, build: -time.Second, want: "negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := srv.SetRef(tc.spec, tc.commit, tc.build)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SetRef(%q, %q) = %v, want an error mentioning %q", tc.spec, tc.commit, err, tc.want)
			}
		})
	}
	for _, ok := range []string{"gh/org/repo/HEAD", "gh/org/repo/main", "gist/user/0123abcd", "gl/group%2Fproject/HEAD", "git/https%3A%2F%2Fexample.org%2Frepo.git/HEAD"} {
		if err := srv.SetRef(ok, commitA, 0); err != nil {
			t.Errorf("SetRef(%q) = %v", ok, err)
		}
	}
}
