package compat

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/test/fakebinder"
)

// TestOfficialClientAgainstTheSimulator checks the simulator speaks the
// protocol the real client understands: a launch through a build reaches
// ready, a second launch attaching to the same build does too, and a ban
// ends at once with no retry.
func TestOfficialClientAgainstTheSimulator(t *testing.T) {
	if _, err := Check(mustDir(t)); err != nil {
		t.Fatal(err)
	}
	sim, err := fakebinder.New(fakebinder.Config{
		BuildTime:         1500 * time.Millisecond,
		LaunchTime:        50 * time.Millisecond,
		KeepaliveInterval: 300 * time.Millisecond,
		BannedSpecs:       "^org/banned",
	})
	if err != nil {
		t.Fatalf("fakebinder.New: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer sim.Close()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = Launch(ctx, srv.URL, "gh/org/repo/HEAD") })
	}
	banned, berr := Launch(ctx, srv.URL, "gh/org/banned/HEAD")
	wg.Wait()
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("launch %d: %v", i, errs[i])
		}
		if r.FinalPhase != "ready" || r.Token == "" || r.RequestsMade != 1 || r.ClosedBy != "ui" {
			t.Errorf("launch %d: final %q token %q requests %d closed by %q, want ready with a token after 1 request", i, r.FinalPhase, r.Token, r.RequestsMade, r.ClosedBy)
		}
	}
	if results[0].Token == results[1].Token {
		t.Errorf("both launches got token %q, want one each", results[0].Token)
	}
	if berr != nil {
		t.Fatalf("banned launch: %v", berr)
	}
	if banned.FinalPhase != "failed" || banned.RequestsMade != 1 || banned.ClosedBy != "client" {
		t.Errorf("banned: final %q requests %d closed by %q, want failed after 1 request, closed by the client", banned.FinalPhase, banned.RequestsMade, banned.ClosedBy)
	}
	if st := sim.Stats(); st.BuildsStarted != 1 || st.Requests != 3 {
		t.Errorf("simulator saw %d builds and %d requests, want 1 and 3", st.BuildsStarted, st.Requests)
	}
}
