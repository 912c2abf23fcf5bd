package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// A replica that shuts down has the other replicas' gates end, with a
// retry, the launches that came through its pod (here: from 127.0.0.1, the
// address it asks from), before its Envoy goes away with it.
func TestShuttingDownDrainsThisPodsLaunchesAtTheOtherGates(t *testing.T) {
	sim, err := fakebinder.New(fakebinder.Config{BuildTime: time.Minute, KeepaliveInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	defer simSrv.Close()
	defer sim.Close()
	up, _ := url.Parse(simSrv.URL)
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
	go func() { otherDone <- serveGate(otherCtx, other, otherLis, time.Second, ir.Endpoint{}, log) }()
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
	for other.State().WaitersTotal != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the follower was never held")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// This replica shuts down; its peers are found as "localhost".
	self, selfLis := newGate()
	ctx, shutdown := context.WithCancel(t.Context())
	peers := ir.Endpoint{Host: "localhost", Port: uint32(otherLis.Addr().(*net.TCPAddr).Port)}
	done := make(chan error, 1)
	go func() { done <- serveGate(ctx, self, selfLis, time.Second, peers, log) }()
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
