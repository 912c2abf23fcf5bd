package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// A replica that shuts down has the other replicas' gates end, with a
// retry, the launches that came through its pod (here: from 127.0.0.1, the
// address it asks from), before its Envoy goes away with it.
func TestShuttingDownDrainsThisPodsLaunchesAtTheOtherGates(t *testing.T) {
	up := startBuildingSim(t)
	log := slog.New(slog.DiscardHandler)
	newGate := func() (*gate.Gate, net.Listener) {
		g, err := gate.New(gate.Config{Upstream: up, Policies: gate.StaticPolicies(gate.DefaultLaunch(), gate.Global{}), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return g, lis
	}

	// The other replica's gate, holding a launch that came from here.
	other, otherLis := newGate()
	otherCtx, stopOther := context.WithCancel(t.Context())
	otherDone := make(chan error, 1)
	go func() { otherDone <- serveGate(otherCtx, other, nil, otherLis, time.Second, nil, log) }()
	defer func() { stopOther(); <-otherDone }()

	launch := func() <-chan string {
		last := make(chan string, 1)
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+otherLis.Addr().String()+"/build/gh/org/repo/HEAD", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				last <- err.Error()
				return
			}
			defer resp.Body.Close()
			rd, msg := sse.NewReader(resp.Body), ""
			for {
				e, err := rd.Next()
				if err != nil {
					last <- msg
					return
				}
				if p, err := e.Decode(); err == nil && !e.IsComment() {
					msg = p.Phase + ": " + p.Message
				}
			}
		}()
		return last
	}
	leader, follower := launch(), launch()
	deadline := time.Now().Add(10 * time.Second)
	for heldAt(other) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the follower was never held")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// This replica shuts down; its peers are found as "localhost".
	self, selfLis := newGate()
	ctx, shutdown := context.WithCancel(t.Context())
	peers := dnsPeers(ir.Endpoint{Host: "localhost", Port: uint32(otherLis.Addr().(*net.TCPAddr).Port)}, net.DefaultResolver.LookupHost)
	done := make(chan error, 1)
	go func() { done <- serveGate(ctx, self, nil, selfLis, time.Second, peers, log) }()
	shutdown()
	if err := <-done; err != nil {
		t.Fatalf("serveGate: %v", err)
	}
	for name, ch := range map[string]<-chan string{"leader": leader, "follower": follower} {
		select {
		case last := <-ch:
			if !strings.HasPrefix(last, "failed: ") || !strings.Contains(last, "restarting") {
				t.Errorf("%s's last event %q, want a failed event asking for a retry", name, last)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s is still held 10 s after the shutdown", name)
		}
	}
}

// The elected replica sums the held launches of every replica's gate,
// read over GET /state from each address the gate Service resolves to.
func TestGatherLoadsSumsEveryReplicasGate(t *testing.T) {
	up := startBuildingSim(t)
	log := slog.New(slog.DiscardHandler)
	const policy = "LaunchPolicy/binderhub/hot"
	pols := gate.PoliciesFunc(func(providerSpec string, _ time.Time) (gate.Policy, error) {
		return gate.Policy{Key: providerSpec, Name: policy, Launch: gate.DefaultLaunch()}, nil
	})
	// Two replicas' gates on one port, as a headless Service has them: on
	// 127.0.0.2 and 127.0.0.1.
	first, second := samePortPair(t)
	port := first.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(t.Context())
	var served sync.WaitGroup
	defer func() { cancel(); served.Wait() }()
	var gates []*gate.Gate
	for _, lis := range []net.Listener{first, second} {
		g, err := gate.New(gate.Config{Upstream: up, Policies: pols, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		gates = append(gates, g)
		served.Go(func() { _ = serveGate(ctx, g, nil, lis, time.Second, nil, log) })
		served.Go(func() { _ = g.Run(ctx) })
	}
	held := []int{3, 5}
	for i, lis := range []net.Listener{first, second} {
		for range held[i] + 1 { // a leader and the held launches
			served.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lis.Addr().String()+"/build/gh/hot/repo/HEAD", nil)
				req.Header.Set("Accept", "text/event-stream")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for heldAt(gates[0]) != held[0] || heldAt(gates[1]) != held[1] {
		if time.Now().After(deadline) {
			t.Fatalf("held %d and %d, want %v", heldAt(gates[0]), heldAt(gates[1]), held)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for !buildingAt(gates[0]) || !buildingAt(gates[1]) {
		if time.Now().After(deadline) {
			t.Fatalf("the gates' flights never showed a build: %+v, %+v", gates[0].State().Hot, gates[1].State().Hot)
		}
		time.Sleep(20 * time.Millisecond)
	}

	svc := ir.Endpoint{Host: "binderguard-gate.binderhub.svc", Port: uint32(port)}
	lookup := func(context.Context, string) ([]string, error) { return []string{"127.0.0.2", "127.0.0.1"}, nil }
	loads, err := gatherLoads(ctx, gates[0], dnsPeers(svc, lookup))
	if err != nil {
		t.Fatal(err)
	}
	got := live.Sum(loads)[policy]
	if got.Waiters != 8 || len(got.Hot) != 1 || got.Hot[0].Spec != "gh/hot/repo/HEAD" || got.Hot[0].Waiters != 8 ||
		got.Hot[0].Stage != v1alpha1.BuildStageBuilding {
		t.Errorf("summed over both gates: %+v, want 8 held launches of gh/hot/repo/HEAD, building", got)
	}

	// The same gates as EDS has them, with one that is still starting
	// (nothing listens yet): it holds nothing.
	known := latest.New([]ir.Endpoint{{Host: "127.0.0.2", Port: uint32(port)}, {Host: "127.0.0.1", Port: uint32(port)}, {Host: "127.0.0.3", Port: uint32(port)}})
	loads, err = gatherLoads(ctx, gates[0], discoveredPeers(known))
	if err != nil {
		t.Fatalf("a gate that refuses connections failed the round: %v", err)
	}
	if got := live.Sum(loads)[policy]; got.Waiters != 8 {
		t.Errorf("summed with a starting gate: %+v, want the same 8", got)
	}

	// A gate that takes the connection but does not answer fails the
	// round instead of under-reporting.
	mute, err := net.Listen("tcp", "127.0.0.4:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	hung := func(context.Context, string) ([]string, error) { return []string{"127.0.0.1", "127.0.0.4"}, nil }
	if _, err := gatherLoads(ctx, gates[0], dnsPeers(svc, hung)); err == nil {
		t.Error("gathering with one gate not answering succeeded")
	}
}

// startBuildingSim serves a simulator whose builds outlast the test, so
// launches stay held; it stops at cleanup.
func startBuildingSim(t *testing.T) *url.URL {
	t.Helper()
	sim, err := fakebinder.New(fakebinder.Config{BuildTime: time.Minute, KeepaliveInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); srv.Close() })
	up, _ := url.Parse(srv.URL)
	return up
}

// samePortPair listens on 127.0.0.2 and 127.0.0.1 at one port, trying
// ports until one is free on both.
func samePortPair(t *testing.T) (net.Listener, net.Listener) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		second, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return first, second
		}
		first.Close()
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.1 in 20 tries")
	return nil, nil
}

// heldAt is how many launches g holds, summed over its policies as its
// GET /state reports them.
func heldAt(g *gate.Gate) int {
	n := 0
	for _, w := range g.State().PolicyWaiters {
		n += w
	}
	return n
}

// A gate whose policies are not loaded says so on /healthz, so no Envoy
// sends it launches (Envoys reach it before its pod is Ready).
func TestGateHealthFailsUntilReady(t *testing.T) {
	g, err := gate.New(gate.Config{Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Policies: gate.StaticPolicies(gate.DefaultLaunch(), gate.Global{}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var loaded atomic.Bool
	srv := httptest.NewServer(newGateServer(g, func() error {
		if !loaded.Load() {
			return errors.New("policies not loaded yet")
		}
		return nil
	}).Handler)
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "policies not loaded yet") {
		t.Errorf("/healthz before the policies: %d %q, want 503 saying why", code, body)
	}
	loaded.Store(true)
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("/healthz once ready: %d, want 200", code)
	}
}

// buildingAt reports whether g's busiest flight shows a build.
func buildingAt(g *gate.Gate) bool {
	hot := g.State().Hot
	return len(hot) > 0 && hot[0].Stage == collapse.Building
}

// Each flight stage reaches LaunchPolicy status in the API's words.
func TestGateLoadNamesEachStage(t *testing.T) {
	tests := map[string]struct {
		stage collapse.Stage
		want  v1alpha1.BuildStage
	}{
		"a leader BinderHub has not answered yet": {stage: collapse.Starting, want: v1alpha1.BuildStageStarting},
		"a leader whose stream shows a build":     {stage: collapse.Building, want: v1alpha1.BuildStageBuilding},
		"a built image releasing the held ones":   {stage: collapse.Releasing, want: v1alpha1.BuildStageReleasing},
		"a spec listed only for its open breaker": {stage: collapse.NoFlight, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := gateLoad(gate.State{Hot: []gate.HotSpec{{Key: "gh/org/repo/HEAD", Waiters: 2, Stage: tc.stage}}})
			if len(l.Hot) != 1 || l.Hot[0].Stage != tc.want {
				t.Errorf("load %+v, want stage %q", l.Hot, tc.want)
			}
		})
	}
}
