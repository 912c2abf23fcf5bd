package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// A resource that passes proto validation but that Envoy rejects is
// NACKed and counted, and the previous config keeps serving.
func TestInvalidResourceIsNACKedAndOldConfigServes(t *testing.T) {
	for name, delta := range map[string]bool{"state of the world": false, "delta": true} {
		t.Run(name, func(t *testing.T) { testNACK(t, delta) })
	}
}

func testNACK(t *testing.T, delta bool) {
	s := startStack(t, options{delta: delta})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()
	goodRDS := s.xds.Acked(resource.RouteType)

	s.publishUncompilableRoute()
	time.Sleep(200 * time.Millisecond)
	if got := s.xds.Acked(resource.RouteType); got != goodRDS {
		t.Errorf("acked route version moved to %q after a NACK, want %q", got, goodRDS)
	}
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second); a.final().StatusCode != 403 {
		t.Errorf("ban no longer served after a NACK: %+v", a.events)
	}
	if a := launch(s.ctx, s.edgeURL, "gh/org/ok/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Errorf("launches no longer served after a NACK: %+v (err %v)", a.events, a.err)
	}
	// The controller's next publish repairs it.
	s.waitRouteAcked()
	s.ctl.SetHot(nil)
	if err := s.ctl.Sync(s.ctx); err != nil {
		t.Fatal(err)
	}
	s.waitAcked(10 * time.Second)
}

// publishUncompilableRoute publishes a route Envoy must reject and waits
// for the NACK. A virtual cluster with a regex RE2 cannot compile: valid
// per field, rejected by Envoy.
func (s *stack) publishUncompilableRoute() {
	s.t.Helper()
	res := s.resources()
	bad := proto.Clone(res.Routes[0]).(*routev3.RouteConfiguration)
	bad.VirtualHosts[0].VirtualClusters = []*routev3.VirtualCluster{{
		Name: "broken",
		Headers: []*routev3.HeaderMatcher{{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: "(unclosed"}}}}}},
	}}
	res.Routes[0] = bad
	// The other types keep the versions in force, so only RDS is pushed.
	versions := map[resource.Type]string{}
	for typ := range res.ByType() {
		versions[typ] = s.xds.Version(typ)
	}
	versions[resource.RouteType] = "uncompilable"
	changed, err := s.xds.Set(s.ctx, res.ByType(), versions, nil)
	if err != nil || !changed {
		s.t.Fatalf("publishing the bad route: changed %v, err %v", changed, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.xds.NACKs() == 0 {
		if time.Now().After(deadline) {
			s.t.Fatal("envoy never NACKed the invalid cluster")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stack) binderURL() string { return "http://" + s.binderAddr.String() }

// Killing the gate in the middle of a storm: new launches still reach
// BinderHub, through the aggregate cluster's fallback.
func TestGateKilledMidStormFallsBackToBinder(t *testing.T) {
	s := startStack(t, options{fb: fakebinder.Config{BuildTime: 2 * time.Second}})

	// A storm of launches of one spec, held by the gate.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			launch(s.ctx, s.edgeURL, "gh/storm/repo/HEAD", 10*time.Second)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	s.killGate()

	// New launches arriving right after the kill, before and after Envoy's
	// health check notices, must all reach BinderHub.
	for i := range 10 {
		a := launch(s.ctx, s.edgeURL, "gh/after/kill/HEAD", 20*time.Second)
		if a.final().Phase != sse.PhaseReady {
			t.Fatalf("launch %d after the gate died got %+v (err %v), want ready via fallback", i, a.events, a.err)
		}
	}
	s.waitGateHealth(false, 10*time.Second)
	if a := launch(s.ctx, s.edgeURL, "gh/after/hc/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("launch with the gate marked unhealthy got %+v (err %v)", a.events, a.err)
	}
	if n := s.binderHits.prefix("/build/gh/after/"); n != 11 {
		t.Errorf("simulator got %d fallback launches, want 11", n)
	}
	// Fallback launches are counted: launch route, upstream host = binder.
	resp, err := http.Get(s.statsURL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`route="launch",upstream_host="%s"`, s.binderAddr)
	if !strings.Contains(string(body), want) {
		t.Errorf("stats do not count fallback launches (%s)", want)
	}
	wg.Wait()
}

// Stopping the control plane leaves Envoy serving its last config; when a
// control plane is back on the same address Envoy reconnects and takes its
// whole config, in both xDS modes: the new control plane's bans hold and
// the old one's that it no longer has are gone (a full resync, not only
// what changed since the stream broke).
func TestEnvoyOutlivesControlPlane(t *testing.T) {
	for name, delta := range map[string]bool{"state of the world": false, "delta": true} {
		t.Run(name, func(t *testing.T) { testOutlives(t, delta) })
	}
}

func testOutlives(t *testing.T, delta bool) {
	s := startStack(t, options{delta: delta})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()

	addr := s.xdsAddr
	s.xdsCancel()
	<-s.xdsDone
	time.Sleep(500 * time.Millisecond)
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second); a.final().StatusCode != 403 {
		t.Errorf("without a control plane the ban is gone: %+v (err %v)", a.events, a.err)
	}
	if resp, err := http.Get(s.edgeURL + "/versions"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("without a control plane /versions fails: %v", err)
	}

	var wg sync.WaitGroup
	s.startXDS(&wg, addr, testLogger(t))
	defer func() { s.xdsCancel(); wg.Wait() }()
	old := s.ctl
	s.ctl = newControllerLike(s, old)
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/other/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "new ban"}})
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.ctl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{resource.RouteType, resource.ExtensionConfigType} {
		if err := s.xds.WaitAcked(ctx, typ, s.xds.Version(typ)); err != nil {
			t.Fatalf("envoy did not reconnect to the new control plane: %v", err)
		}
	}
	if a := launch(s.ctx, s.edgeURL, "gh/other/repo/HEAD", 5*time.Second); a.final().Message != "new ban" {
		t.Errorf("config from the new control plane not served: %+v", a.events)
	}
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second); a.header.Get("X-Binderguard-Class") == "banned" {
		t.Errorf("a ban the new control plane does not have is still answered at the edge: %+v", a.events)
	}
}

// Overflowing the gate cluster's circuit breaker reaches the official JS
// client as a failed event carrying status_code 503 (a bare 503 would
// reach its user as a garbled connection error), and the client stops.
func TestBreakerOverflowStopsOfficialClient(t *testing.T) {
	s := startStack(t, options{
		fb:           fakebinder.Config{BuildTime: 30 * time.Second},
		gateBreakers: ir.Breakers{MaxRequests: 1, MaxPendingRequests: 1},
	})
	// One launch holds the only request slot.
	held, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go launch(held, s.edgeURL, "gh/slow/repo/HEAD", 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for s.gateHits.prefix("/build/gh/slow/") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the holding launch never reached the gate")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel2 := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel2()
	res, err := compat.Launch(ctx, s.edgeURL, "gh/other/repo/HEAD")
	if err != nil {
		t.Fatalf("running the official client: %v", err)
	}
	if res.FinalPhase != sse.PhaseFailed || res.StatusCode != 503 {
		t.Fatalf("official client ended in %q (status_code %d, message %q), want failed 503", res.FinalPhase, res.StatusCode, res.Message)
	}
	if res.RequestsMade != 1 || res.ClosedBy != "client" {
		t.Errorf("official client made %d requests (statuses %v), closed by %q: want 1 request and a stop", res.RequestsMade, res.Statuses, res.ClosedBy)
	}
	if n := s.gateHits.prefix("/build/gh/other/"); n != 0 {
		t.Errorf("overflowed launch reached the gate %d times", n)
	}
	if v := s.adminStat("cluster.gate.upstream_rq_active_overflow"); v == "" || v == "0" {
		t.Errorf("envoy counted no overflow (cluster.gate.upstream_rq_active_overflow = %q)", v)
	}
}
