package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// LaunchPolicy status promises hotSpecs[].breakerOpenUntil "while the
// spec's breaker is open", and a spec "listed only for its open breaker"
// (policies/api/v1alpha1 HotSpec). Once the failed build's flight ends,
// the gate lists the open breaker on its own; it must name the policy that
// governs the spec, or live.Sum files it under policy "", which no
// LaunchPolicy is, and the breaker that refuses every launch of the spec
// shows in no status.
func TestAnOpenBreakerReachesItsLaunchPolicysStatus(t *testing.T) {
	sim, err := fakebinder.New(fakebinder.Config{BuildTime: 200 * time.Millisecond, KeepaliveInterval: time.Second, FailSpecs: "broken"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); srv.Close() })
	up, _ := url.Parse(srv.URL)

	const policy = "LaunchPolicy/binderhub/site"
	l := gate.DefaultLaunch()
	l.BreakerFailures, l.BreakerOpen = 1, time.Hour
	pols := gate.PoliciesFunc(func(providerSpec string, _ time.Time) (gate.Policy, error) {
		return gate.Policy{Key: providerSpec, Name: policy, Launch: l}, nil
	})
	g, err := gate.New(gate.Config{Upstream: up, Policies: pols, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	gs := httptest.NewServer(g)
	defer gs.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = g.Run(ctx) }()

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gs.URL+"/build/gh/org/broken/HEAD", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) // the failed build's stream, to its end
	resp.Body.Close()

	deadline := time.Now().Add(10 * time.Second)
	for !openAt(g, "gh/org/broken/HEAD") {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker never opened: %+v", g.State().Hot)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loads, err := gatherLoads(ctx, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := live.Sum(loads)[policy]
	if len(got.Hot) != 1 || got.Hot[0].Spec != "gh/org/broken/HEAD" || got.Hot[0].BreakerOpenUntil == nil {
		t.Errorf("%s status totals %+v, want gh/org/broken/HEAD listed with breakerOpenUntil (the gate listed it as %+v)",
			policy, got, g.State().Hot)
	}
}

func openAt(g *gate.Gate, key string) bool {
	for _, h := range g.State().Hot {
		if h.Key == key && h.Breaker == collapse.Open {
			return true
		}
	}
	return false
}
