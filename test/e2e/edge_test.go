package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// Envoy connects, ACKs, and traffic flows: non-launch requests straight to
// BinderHub, launches through the gate over h2c to the simulator.
func TestEnvoyServesTrafficFromXDS(t *testing.T) {
	for name, delta := range map[string]bool{"state of the world": false, "delta": true} {
		t.Run(name, func(t *testing.T) {
			s := startStack(t, options{delta: delta})

			req, _ := http.NewRequest(http.MethodGet, s.edgeURL+"/versions", nil)
			req.Header.Set("X-Real-Ip", "203.0.113.9") // a client trying to spoof
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET /versions through envoy: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "binderhub") {
				t.Fatalf("GET /versions = %d %q, want the simulator's answer", resp.StatusCode, body)
			}
			if ip, _ := s.binderHits.seen("/versions"); ip != "127.0.0.1" {
				t.Errorf("BinderHub saw X-Real-Ip %q, want Envoy's view of the client (127.0.0.1), not the spoofed one", ip)
			}
			if s.gateHits.prefix("/versions") != 0 {
				t.Errorf("a non-launch request went to the gate")
			}

			a := launch(s.ctx, s.edgeURL, "gh/org/repo/HEAD", 20*time.Second)
			if a.err != nil || a.final().Phase != sse.PhaseReady {
				t.Fatalf("launch through envoy: err %v, events %+v, want ready", a.err, a.events)
			}
			if _, proto := s.gateHits.seen("/build/gh/org/repo/HEAD"); proto != 2 {
				t.Errorf("envoy reached the gate over HTTP/%d, want h2c", proto)
			}
			if n := s.binderHits.prefix("/build/gh/org/repo/HEAD"); n != 1 {
				t.Errorf("simulator got %d launch requests, want 1 (through the gate)", n)
			}
		})
	}
}

// A ban at the edge answers with one failed event and never reaches the
// gate or the simulator; removing it restores launches.
func TestBanAnsweredAtEdge(t *testing.T) {
	s := startStack(t, options{})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned for mining"}})
	s.waitRouteAcked()

	a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second)
	if a.status != 200 || len(a.events) != 1 || a.final().Phase != sse.PhaseFailed || a.final().StatusCode != 403 || a.final().Message != "banned for mining" {
		t.Fatalf("banned launch got %d %+v, want 200 and one failed 403 event", a.status, a.events)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("content type %q, want text/event-stream", ct)
	}
	if n := s.gateHits.prefix("/build/gh/evil/") + s.binderHits.prefix("/build/gh/evil/"); n != 0 {
		t.Errorf("%d banned launches got past the edge", n)
	}

	s.ctl.SetBans(nil)
	s.waitRouteAcked()
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("after unban got %+v (err %v), want ready", a.events, a.err)
	}
}

// Envoy's own rejections on /build/ reach the client as BinderHub's: 200,
// one failed event, Retry-After; and the stats listener tells the classes
// apart.
func TestRateLimitedLaunchIsOneFailedEventWithRetryAfter(t *testing.T) {
	s := startStack(t, options{edgeLaunch: ir.Launch{ClientRate: ir.RateLimit{PerSecond: 0.1, Burst: 2}, RetryAfter: 7 * time.Second}})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()

	var last answer
	for range 3 {
		last = launch(s.ctx, s.edgeURL, "gh/org/ratelimited/HEAD", 20*time.Second)
	}
	if last.status != 200 || len(last.events) != 1 || last.final().StatusCode != 429 || last.final().Phase != sse.PhaseFailed {
		t.Fatalf("third launch in a burst of 2 got %d %+v (err %v), want 200 and one failed 429 event", last.status, last.events, last.err)
	}
	if ra := last.header.Get("Retry-After"); ra != "7" {
		t.Errorf("Retry-After %q, want 7", ra)
	}
	if ct := last.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("content type %q, want text/event-stream", ct)
	}
	if n := s.binderHits.prefix("/build/gh/org/ratelimited/"); n != 2 {
		t.Errorf("simulator got %d launches, want the 2 the bucket allowed", n)
	}
	// Non-launch traffic is not rate limited.
	for range 5 {
		if resp, err := http.Get(s.edgeURL + "/versions"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("/versions after the launch burst: %v", err)
		}
	}

	launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second)
	resp, err := http.Get(s.statsURL + "/stats/prometheus")
	if err != nil {
		t.Fatalf("stats listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		// A ban is answered by its slot filter on the launch route.
		`envoy_binderguard_launches{class="banned",route="launch"`,
		`envoy_binderguard_launches{class="shed",route="launch"`,
		`envoy_binderguard_launches{class="lead",route="launch"`, // the gate's own class
		`envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix="launch_client_ip"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("stats listener lacks %s", want)
		}
	}
}

// Behind one trusted proxy, the client address BinderHub sees is the one
// that proxy appended to X-Forwarded-For, and a client-sent X-Real-Ip is
// still overwritten.
func TestClientAddressFromTrustedForwardedFor(t *testing.T) {
	s := startStack(t, options{xffHops: 1})
	req, _ := http.NewRequest(http.MethodGet, s.edgeURL+"/versions", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.7, 192.0.2.1")
	req.Header.Set("X-Real-Ip", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ip, _ := s.binderHits.seen("/versions"); ip != "192.0.2.1" {
		t.Errorf("BinderHub saw X-Real-Ip %q, want 192.0.2.1 (the entry the trusted proxy appended)", ip)
	}
}

// When the gate's breaker for a spec opens, the control plane pushes an
// edge rule: Envoy answers that spec itself (503 in the failed event,
// Retry-After) and the gate sees no more of it.
func TestOpenBreakerAtGateIsAnsweredAtEdge(t *testing.T) {
	l := gate.DefaultLaunch()
	l.BreakerFailures, l.BreakerOpen = 1, 2*time.Minute
	s := startStack(t, options{launch: l, fb: fakebinder.Config{FailSpecs: "gh/broken/"}})

	first := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 20*time.Second)
	if first.final().Phase != sse.PhaseFailed {
		t.Fatalf("failing build got %+v (err %v), want a failed event", first.events, first.err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var a answer
	for {
		a = launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 5*time.Second)
		if a.header.Get("X-Binderguard-Class") == string(ir.ClassBreakerOpen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("open breaker not answered at the edge within 5 s; last answer %+v %v", a.events, a.header)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.status != 200 || a.final().StatusCode != 503 || len(a.events) != 1 {
		t.Errorf("edge breaker answer %d %+v, want 200 and one failed 503 event", a.status, a.events)
	}
	if ra, _ := strconv.Atoi(a.header.Get("Retry-After")); ra < 60 || ra > 130 {
		t.Errorf("Retry-After %q, want about the 2 min the breaker stays open", a.header.Get("Retry-After"))
	}
	before := s.gateHits.prefix("/build/gh/broken/")
	for range 5 {
		launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 5*time.Second)
	}
	if after := s.gateHits.prefix("/build/gh/broken/"); after != before {
		t.Errorf("%d launches of the tripped spec still reached the gate", after-before)
	}
}

// A repository banned while it is hot gets the ban's answer at the edge,
// not the hot spec's: the hot rule's full path (/build/gh/broken/repo/HEAD)
// is a longer prefix than the ban (/build/gh/broken/repo/) and used to win,
// answering a banned launch 503 "try again later".
func TestBanWinsOverHotSpecAtEdge(t *testing.T) {
	l := gate.DefaultLaunch()
	l.BreakerFailures, l.BreakerOpen = 1, 2*time.Minute
	s := startStack(t, options{launch: l, fb: fakebinder.Config{FailSpecs: "gh/broken/"}})

	if first := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 20*time.Second); first.final().Phase != sse.PhaseFailed {
		t.Fatalf("failing build got %+v (err %v), want a failed event", first.events, first.err)
	}
	waitFor(t, 5*time.Second, "the open breaker answered at the edge", func() bool {
		a := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 5*time.Second)
		return a.header.Get("X-Binderguard-Class") == string(ir.ClassBreakerOpen)
	})

	const msg = "gh/broken/repo is banned: it mines cryptocurrency"
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/broken/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: msg}})
	s.waitRouteAcked()
	if hot := s.ctl.Edge().Blocks[1:]; len(hot) == 0 {
		t.Fatal("the spec is no longer hot at the gate: the test would not test a banned hot spec")
	}
	a := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 5*time.Second)
	if a.status != 200 || len(a.events) != 1 || a.final().Phase != sse.PhaseFailed || a.final().StatusCode != 403 || a.final().Message != msg {
		t.Fatalf("banned hot launch got %d %+v (class %q), want 200 and one failed 403 event with the ban's message",
			a.status, a.events, a.header.Get("X-Binderguard-Class"))
	}
	if c := a.header.Get("X-Binderguard-Class"); c != string(ir.ClassBanned) {
		t.Errorf("class %q, want %q", c, ir.ClassBanned)
	}

	// Unbanned, the spec is still hot: the edge answers its breaker again.
	s.ctl.SetBans(nil)
	s.waitRouteAcked()
	if a := launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 5*time.Second); a.header.Get("X-Binderguard-Class") != string(ir.ClassBreakerOpen) || a.final().StatusCode != 503 {
		t.Errorf("after unban got %+v (class %q), want the open breaker's 503 again", a.events, a.header.Get("X-Binderguard-Class"))
	}
}

// A spec whose waiting room at the gate is full is shed at the edge with a
// 429 failed event, so a storm stops at Envoy.
func TestFullWaitingRoomIsShedAtEdge(t *testing.T) {
	l := gate.DefaultLaunch()
	l.MaxWaiters = 2
	s := startStack(t, options{launch: l, fb: fakebinder.Config{BuildTime: 20 * time.Second}})
	for range 3 { // a leader and two held followers
		go launch(s.ctx, s.edgeURL, "gh/popular/repo/HEAD", 30*time.Second)
		time.Sleep(200 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := launch(s.ctx, s.edgeURL, "gh/popular/repo/HEAD", 2*time.Second)
		if a.header.Get("X-Binderguard-Class") == string(ir.ClassSaturated) {
			if a.final().StatusCode != 429 || a.header.Get("Retry-After") == "" {
				t.Errorf("edge shed answer %+v (Retry-After %q), want a failed 429 with Retry-After", a.events, a.header.Get("Retry-After"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("full waiting room not shed at the edge within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := s.binderHits.prefix("/build/gh/popular/"); n != 1 {
		t.Errorf("simulator got %d launches of the popular spec, want the leader's only", n)
	}
}

// A launch URL with malformed percent-encoding is answered at the edge
// with a 400 failed event that says what is wrong. It used to reach the
// gate, whose HTTP server resets such an h2c stream, and came back as
// "This Binder is at capacity" 503 after a retry at BinderHub.
func TestMalformedLaunchURLIsAnsweredAtTheEdge(t *testing.T) {
	s := startStack(t, options{})
	host := strings.TrimPrefix(s.edgeURL, "http://")
	for _, path := range []string{"/build/gh/%zz/x/HEAD", "/build/gh/org/repo%2/HEAD", "/build/gh/org/repo/HEAD%"} {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		// Raw, because Go's client refuses to send such a URL.
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: binder.test\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%s: %v", path, err)
		}
		events, err := readEvents(resp.Body)
		c.Close()
		if err != nil || resp.StatusCode != 200 || len(events) != 1 || events[0].Phase != sse.PhaseFailed || events[0].StatusCode != 400 ||
			!strings.Contains(events[0].Message, "percent-encoding") || resp.Header.Get("Retry-After") != "" {
			t.Errorf("%s: %d %+v (retry-after %q, err %v), want 200 and one failed 400 event about the encoding, no Retry-After",
				path, resp.StatusCode, events, resp.Header.Get("Retry-After"), err)
		}
	}
	if n := s.gateHits.prefix("/build/") + s.binderHits.prefix("/build/"); n != 0 {
		t.Errorf("%d malformed launches got past the edge", n)
	}
	if a := launch(s.ctx, s.edgeURL, "gh/org/repo/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("the next normal launch got %+v (err %v), want ready", a.events, a.err)
	}
}

func readEvents(r io.Reader) ([]sse.Payload, error) {
	var out []sse.Payload
	rd := sse.NewReader(r)
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if e.IsComment() {
			continue
		}
		p, err := e.Decode()
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}
