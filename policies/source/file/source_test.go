package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
)

// deadline is generous: the source reloads within ~100 ms, but CI machines
// are shared. Tests wait for a condition; they never assert on timing.
const deadline = 15 * time.Second

func banned(t *testing.T, s *snapshot.Snapshot, providerSpec string) bool {
	t.Helper()
	sp, err := spec.Parse(providerSpec)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := s.Ban(sp, time.Now())
	return ok
}

// waitFor polls the store until cond holds.
func waitFor(t *testing.T, st *snapshot.Store, what string, cond func(*snapshot.Snapshot) bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if cond(st.Load()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for: %s", what)
}

func waitProblems(t *testing.T, src *Source, want bool) []FileError {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if p := src.Problems(); (len(p) > 0) == want {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for problems = %v", want)
	return nil
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace saves like vim and many editors: write a new file, rename it over.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestEditBreakFixTheSnapshotFollowsAndTheBadFileNeverWins(t *testing.T) {
	dir := t.TempDir()
	bans := filepath.Join(dir, "bans.yaml")
	other := filepath.Join(dir, "other.yaml")
	write(t, bans, banYAML)
	write(t, filepath.Join(dir, "README.md"), "not a policy") // ignored

	st := snapshot.NewStore(nil)
	src, err := New(Config{Dir: dir, Store: st, Resync: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	waitFor(t, st, "the initial ban", func(s *snapshot.Snapshot) bool {
		return banned(t, s, "gh/jupyterlab/jupyterlab-demo/HEAD")
	})

	// edit: ban a second repository
	write(t, bans, strings.Replace(banYAML, "    - gh/jupyterlab/jupyterlab-demo\n",
		"    - gh/jupyterlab/jupyterlab-demo\n    - gh/ines/spacy-binder\n", 1))
	waitFor(t, st, "the edit", func(s *snapshot.Snapshot) bool {
		return banned(t, s, "gh/ines/spacy-binder/HEAD")
	})
	good := st.Load().Version

	// break: a YAML error and, separately, a valid edit in another file
	replace(t, bans, "apiVersion: binderguard.io/v1alpha1\nkind: RepoBan\nmetadata: [\n")
	p := waitProblems(t, src, true)
	if p[0].File != bans || p[0].Line < 1 || p[0].Reason == "" {
		t.Errorf("problem = %+v, want file, line and reason", p[0])
	}
	s := st.Load()
	if !banned(t, s, "gh/jupyterlab/jupyterlab-demo/HEAD") || !banned(t, s, "gh/ines/spacy-binder/HEAD") {
		t.Fatal("a broken file lifted its bans")
	}
	if s.Version != good {
		t.Errorf("version changed on a broken file: %s -> %s", good, s.Version)
	}
	write(t, other, strings.ReplaceAll(banYAML, "jupyterlab-demo", "other"))
	waitFor(t, st, "another file's edit while one file is broken", func(s *snapshot.Snapshot) bool {
		return banned(t, s, "gh/jupyterlab/other/HEAD") && banned(t, s, "gh/ines/spacy-binder/HEAD")
	})

	// break with valid YAML but an invalid policy: still never wins
	write(t, bans, strings.Replace(banYAML, "gh/jupyterlab/jupyterlab-demo", "gh/no-ref-allowed/%2F", 1))
	waitFor(t, st, "the invalid policy to be reported", func(*snapshot.Snapshot) bool {
		return len(src.Problems()) > 0 && strings.Contains(src.Problems()[0].Reason, "spec.repos[0]")
	})
	if !banned(t, st.Load(), "gh/jupyterlab/jupyterlab-demo/HEAD") {
		t.Fatal("an invalid policy replaced the file's last good one")
	}

	// fix: the file applies again, with its new content
	replace(t, bans, banYAML)
	waitFor(t, st, "the fix", func(s *snapshot.Snapshot) bool {
		return banned(t, s, "gh/jupyterlab/jupyterlab-demo/HEAD") && !banned(t, s, "gh/ines/spacy-binder/HEAD")
	})
	waitProblems(t, src, false)

	// delete: the file's policies go
	if err := os.Remove(bans); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the deletion", func(s *snapshot.Snapshot) bool {
		return !banned(t, s, "gh/jupyterlab/jupyterlab-demo/HEAD") && banned(t, s, "gh/jupyterlab/other/HEAD")
	})
}

func TestAFileThatWasNeverValidContributesNothing(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), banYAML)
	write(t, filepath.Join(dir, "b.yaml"), "kind: [")
	st := snapshot.NewStore(nil)
	src, err := New(Config{Dir: dir, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if !banned(t, st.Load(), "gh/jupyterlab/jupyterlab-demo/HEAD") {
		t.Error("the valid file did not apply")
	}
	if p := src.Problems(); len(p) != 1 || p[0].File != filepath.Join(dir, "b.yaml") {
		t.Errorf("problems = %+v", p)
	}
}

func TestDuplicatesAcrossFilesAreReported(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), banYAML)
	write(t, filepath.Join(dir, "b.yaml"), banYAML)
	_, problems, err := LoadDir(dir, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].File != filepath.Join(dir, "b.yaml") || !strings.Contains(problems[0].Reason, "also defined in") {
		t.Errorf("problems = %v", problems)
	}
}

func TestRunFailsOnAMissingDirectory(t *testing.T) {
	src, err := New(Config{Dir: filepath.Join(t.TempDir(), "missing"), Store: snapshot.NewStore(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background()); err == nil {
		t.Error("Run on a missing directory: want an error")
	}
}
