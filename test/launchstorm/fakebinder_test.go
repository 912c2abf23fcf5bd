package launchstorm

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/binderguard/binderguard/test/fakebinder"
)

// TestStormTheSimulator storms fakebinder in process, straight (no gate):
// every request for the building repository becomes a build watcher, as in
// the 2018-07-30 incident, and every launch still gets its own token.
func TestStormTheSimulator(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sim, err := fakebinder.New(fakebinder.Config{
		BuildTime:         2 * time.Second,
		LaunchTime:        20 * time.Millisecond,
		ReadyHold:         time.Second,
		KeepaliveInterval: 500 * time.Millisecond,
		BuiltSpecs:        "^gh/other/built/",
		BannedSpecs:       "^other/banned",
	})
	if err != nil {
		t.Fatalf("fakebinder.New: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer sim.Close()
	defer srv.Close()

	const clients = 200
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Run(ctx, Config{
		URL:     srv.URL,
		Spec:    "gh/org/popular/HEAD",
		Clients: clients,
		Timeout: time.Minute,
		Mix: []MixEntry{
			{Spec: "gh/other/built/HEAD", Clients: 10, Interval: Duration(50 * time.Millisecond)},
			{Spec: "gh/other/banned/HEAD", Clients: 3},
		},
		StatsURL: srv.URL + "/_sim/stats",
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Ready != clients || s.DistinctTokens != clients || s.Failed != 0 || s.Errors != 0 {
		t.Errorf("ready %d distinct tokens %d failed %d errors %d, want %d %d 0 0 (errors: %v)",
			s.Ready, s.DistinctTokens, s.Failed, s.Errors, clients, clients, s.ErrorMessages)
	}
	if s.Phases["building"] == 0 || s.Phases["built"] != clients {
		t.Errorf("phases %v, want building seen and built by every client", s.Phases)
	}
	if s.Mix == nil {
		t.Fatal("no mix summary")
	}
	// BinderHub's ban answer is a failed event without a status_code.
	built, banned := s.Mix.Specs["gh/other/built/HEAD"], s.Mix.Specs["gh/other/banned/HEAD"]
	if built.Ready != 10 || banned.ByStatus["none"] != 3 {
		t.Errorf("mix: built repo ready %d, banned repo by status %v, want 10 ready and 3 failed without a code", built.Ready, banned.ByStatus)
	}
	var stats fakebinder.Stats
	if err := json.Unmarshal(s.SimStats, &stats); err != nil {
		t.Fatalf("sim stats %q (%s): %v", s.SimStats, s.StatsError, err)
	}
	t.Logf("ready %d p50 %.2fs p99 %.2fs; sim: peak watchers %d, peak queued %d, builds %d, peak load %.2f",
		s.Ready, s.P50ReadyS, s.P99ReadyS, stats.PeakBuildWatchers, stats.PeakQueued, stats.BuildsStarted, stats.PeakLoadFactor)
	// BinderHub dedups builds by pod name only: the requests queued behind
	// the pool (64 pod watches at a time, their log streams queued behind
	// the other submits) submit their build when they get a worker, after
	// the first build's pod is gone, and build it again, a round at a time
	// (build.py KubernetesBuildExecutor.submit).
	if rounds := int64((clients + 63) / 64); stats.BuildsStarted < 2 || stats.BuildsStarted > rounds {
		t.Errorf("builds started %d, want 2 to %d: one per round of queued requests", stats.BuildsStarted, rounds)
	}
	// Without a gate every launch of the building repository watches the
	// build: the incident.
	if stats.PeakBuildWatchers < clients/2 {
		t.Errorf("peak build watchers %d, want most of the %d launches watching the build", stats.PeakBuildWatchers, clients)
	}
	if stats.TokensIssued != clients+10 {
		t.Errorf("tokens issued %d, want %d", stats.TokensIssued, clients+10)
	}
}
