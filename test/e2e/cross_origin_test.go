package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// corsBinderHub adds what BinderHub with cors_allow_origin = '*' (the
// setting BinderHub's docs/source/cors.rst gives for Thebe and Juniper,
// which launch from other sites' pages) puts on every /build answer:
// app.py copies cors_allow_origin into tornado_settings["headers"], and
// BaseHandler.set_default_headers sets those plus
// access-control-allow-headers: cache-control on every response, errors
// included (BuildHandler.send_error does not clear them).
func corsBinderHub(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/build/") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Headers", "cache-control")
		}
		next.ServeHTTP(w, r)
	})
}

// openLaunch opens a cross-origin launch, as a page on another site does,
// and returns its headers and first event; the stream stays open until
// ctx ends.
func openLaunch(ctx context.Context, t *testing.T, url string) (http.Header, sse.Payload) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Origin", "https://book.example.org")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	context.AfterFunc(ctx, func() { resp.Body.Close() })
	rd := sse.NewReader(bufio.NewReader(resp.Body))
	for {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("GET %s: no event: %v", url, err)
		}
		if ev.IsComment() {
			continue
		}
		p, _ := ev.Decode()
		return resp.Header, p
	}
}

// Against a BinderHub that allows cross-origin launches, every answer a
// launch gets must carry BinderHub's Access-Control-Allow-Origin, or the
// browser hides it from the page: the official client then reports
// "Error in event stream: TypeError: Failed to fetch" and a native
// EventSource just closes, so a held launch never completes and a ban or
// rate limit message is never read. Answers the gate forwards from
// BinderHub carry it (their headers are copied); answers the gate or the
// edge make themselves (a held follower's stream, a ban, Envoy's 429)
// carry it because binderguard is told the site's cors_allow_origin
// (--cors-allow-origin).
func TestCrossOriginAnswersCarryBinderHubsCORSHeaders(t *testing.T) {
	s := startStack(t, options{
		fb:         fakebinder.Config{BuildTime: 5 * time.Second},
		edgeLaunch: ir.Launch{ClientRate: ir.RateLimit{PerSecond: 0.01, Burst: 2}},
		binderWrap: corsBinderHub,
		corsOrigin: "*",
	})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()

	type seen struct {
		what  string
		h     http.Header
		first sse.Payload
	}
	var all []seen
	h, p := openLaunch(ctx, t, s.edgeURL+"/build/gh/org/popular/HEAD")
	all = append(all, seen{"leader (BinderHub's own headers)", h, p})
	h, p = openLaunch(ctx, t, s.edgeURL+"/build/gh/org/popular/HEAD")
	all = append(all, seen{"held follower", h, p})
	h, p = openLaunch(ctx, t, s.edgeURL+"/build/gh/evil/repo/HEAD")
	all = append(all, seen{"ban at the edge", h, p})
	h, p = openLaunch(ctx, t, s.edgeURL+"/build/gh/org/third/HEAD")
	all = append(all, seen{"edge rate limit", h, p})

	for _, a := range all {
		t.Logf("%s: class %q, first event %s", a.what, a.h.Get("X-Binderguard-Class"), a.first.Phase)
		if got := a.h.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s (class %q): Access-Control-Allow-Origin %q, want BinderHub's \"*\"", a.what, a.h.Get("X-Binderguard-Class"), got)
		}
	}
	if all[0].h.Get("X-Binderguard-Class") != "lead" || all[1].h.Get("X-Binderguard-Class") != "follow" ||
		all[2].h.Get("X-Binderguard-Class") != string(ir.ClassBanned) || all[3].first.StatusCode != 429 {
		t.Errorf("the answers were not the four kinds the test means to check: %+v", all)
	}
}

// A CORS preflight (OPTIONS) or a HEAD of a launch URL is not a launch.
// BinderHub answers a browser's preflight 200 with its CORS headers (it
// carries no Accept: text/event-stream, so BuildHandler.prepare refuses it
// and send_error writes one failed event on a 200; with that Accept,
// BaseHandler.options answers an empty 200), and counts only GET /build in
// its rate limit (BuildHandler.get calls check_rate_limit). The edge must
// do the same: a launch bucket that took a token for every method would
// make a client whose request needs a preflight (the official client
// sends X-Xsrftoken or an Authorization header when it has them) pay two
// tokens per launch, and a link checker's HEAD use up a user's launches.
func TestPreflightIsNotALaunch(t *testing.T) {
	s := startStack(t, options{edgeLaunch: ir.Launch{ClientRate: ir.RateLimit{PerSecond: 0.01, Burst: 1}}})
	host := strings.TrimPrefix(s.edgeURL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "OPTIONS /build/gh/org/repo/HEAD HTTP/1.1\r\nHost: binder.test\r\nOrigin: https://book.example.org\r\n"+
		"Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: cache-control\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	c.Close()
	if resp.StatusCode/100 != 2 {
		t.Errorf("preflight answered %d (class %q), want 2xx as BinderHub answers a preflight", resp.StatusCode, resp.Header.Get("X-Binderguard-Class"))
	}

	a := launch(s.ctx, s.edgeURL, "gh/org/repo/HEAD", 20*time.Second)
	if a.err != nil && !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("launch: %v", a.err)
	}
	if a.final().Phase != sse.PhaseReady {
		t.Errorf("the launch after its preflight got %+v (class %q), want ready: the preflight took the address's only launch token",
			a.events, a.header.Get("X-Binderguard-Class"))
	}
}

// The edge's other answers (a hot spec's direct response, a malformed
// launch URL) and the gate's rejections carry the configured origin too;
// an answer copied from a BinderHub that sends no CORS headers, and
// anything that is not a launch, get none from binderguard.
func TestEdgeAndGateAnswersCarryOnlyTheConfiguredOrigin(t *testing.T) {
	const origin = "https://book.example.org"
	s := startStack(t, options{fb: fakebinder.Config{BuildTime: 100 * time.Millisecond}, corsOrigin: origin})
	s.ctl.SetHot([]ir.Block{{PathPrefix: "/build/gh/org/hot/HEAD", Class: ir.ClassBreakerOpen, StatusCode: 503,
		Message: "recent builds failed", RetryAfter: 30 * time.Second}})
	if err := s.ctl.Sync(s.ctx); err != nil {
		t.Fatal(err)
	}
	s.waitRouteAcked()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()

	h, p := openLaunch(ctx, t, s.edgeURL+"/build/gh/org/hot/HEAD")
	if h.Get("X-Binderguard-Class") != string(ir.ClassBreakerOpen) || h.Get("Access-Control-Allow-Origin") != origin ||
		h.Get("Access-Control-Allow-Headers") != "cache-control" || h.Get("Content-Type") != "text/event-stream; charset=UTF-8" {
		t.Errorf("hot spec: headers %v, event %+v; want class breaker_open, the origin, allow-headers cache-control and an event stream", h, p)
	}
	h, p = openLaunch(ctx, t, s.edgeURL+"/build/gh/org/"+strings.Repeat("x", 2100)+"/HEAD")
	if h.Get("X-Binderguard-Class") != "invalid" || p.StatusCode != 400 || h.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("the gate's refusal of a too long spec: headers %v, event %+v; want class invalid, 400 and the origin", h, p)
	}

	host := strings.TrimPrefix(s.edgeURL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /build/gh/%%zz/x/HEAD HTTP/1.1\r\nHost: binder.test\r\nAccept: text/event-stream\r\nOrigin: https://book.example.org\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	c.Close()
	if resp.Header.Get("X-Binderguard-Class") != "invalid" || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("malformed launch URL: headers %v; want class invalid and the origin", resp.Header)
	}

	// This BinderHub sends no CORS headers: its answers reach the page as
	// they are.
	h, p = openLaunch(ctx, t, s.edgeURL+"/build/gh/org/repo/HEAD")
	if h.Get("X-Binderguard-Class") != "lead" || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("leader: class %q, Access-Control-Allow-Origin %q; want lead and BinderHub's none", h.Get("X-Binderguard-Class"), h.Get("Access-Control-Allow-Origin"))
	}
	resp, err = http.Get(s.edgeURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("/health: Access-Control-Allow-Origin %q, want none (not a launch)", got)
	}
}

// A HEAD of a banned launch URL is no launch: it goes to BinderHub, as
// without binderguard, and is neither answered nor counted as a ban.
func TestHeadOfABannedLaunchURLGoesToBinderHub(t *testing.T) {
	s := startStack(t, options{})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()
	req, _ := http.NewRequestWithContext(s.ctx, http.MethodHead, s.edgeURL+"/build/gh/evil/repo/HEAD", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := resp.Header.Get("X-Binderguard-Class"); c != "" || s.binderHits.prefix("/build/gh/evil/repo/") != 1 {
		t.Errorf("HEAD of a banned spec: class %q, %d requests at BinderHub; want no class and one", c, s.binderHits.prefix("/build/gh/evil/repo/"))
	}
	if a := launch(s.ctx, s.edgeURL, "gh/evil/repo/HEAD", 5*time.Second); a.final().StatusCode != 403 {
		t.Errorf("a GET of the banned spec got %+v, want the ban", a.events)
	}
}
