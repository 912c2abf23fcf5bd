package gate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// ingressNotFound is the page an ingress (or BinderHub for a path it does
// not route) answers with: HTML, not an event stream.
const ingressNotFound = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>\n"

// A stale launch that falls back after its stream has started can only
// add events to it. When the fallback's own launch gets an answer that is
// neither an event stream nor a 429/5xx (here an ingress's 404 page, once
// the build is over so the fallback passes or leads), the client gets one
// failed event that says so, not the page copied raw into its stream.
func TestStaleFallbackEndsTheStreamWithAFailedEventOnANonEventAnswer(t *testing.T) {
	const bBuild = 2 * time.Second
	var gone atomic.Bool
	via := func(next http.Handler) http.Handler {
		stalled := stallAfterBuilt(2 * bBuild)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if gone.Load() && !strings.HasSuffix(r.URL.Path, "/"+commitA) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, ingressNotFound)
				return
			}
			stalled.ServeHTTP(w, r)
		})
	}
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild, via)
	leader := make(chan result, 1)
	go func() {
		l := <-s.leader
		gone.Store(true) // B is built: from now on launches of HEAD meet the 404 page
		leader <- l
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 4*bBuild)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.gateURL+"/build/"+s.withToken(t), nil)
	req.Header = s.origin.Clone()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Real-Ip", clientIP(9))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the stream: %v (read %q)", err, body)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("answer %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if bytes.Contains(body, []byte("<html")) || bytes.Contains(body, []byte("nginx")) {
		t.Errorf("the upstream's HTML page was written into the event stream:\n%s", body)
	}
	var events []sse.Payload
	rd := sse.NewReader(bytes.NewReader(body))
	for {
		e, err := rd.Next()
		if err != nil {
			break
		}
		if e.IsComment() {
			continue
		}
		p, err := e.Decode()
		if err != nil {
			t.Fatalf("an event that is not BinderHub's JSON: %q: %v", e.Data, err)
		}
		events = append(events, p)
	}
	if len(events) < 2 || !hasMessage(&events[0], staleNotice) {
		t.Fatalf("events %+v, want the stale notice first, then the fallback's answer", events)
	}
	last := events[len(events)-1]
	if last.Phase != sse.PhaseFailed || last.StatusCode != http.StatusBadGateway || !strings.Contains(last.Message, "404 Not Found") || len(last.Message) > 200 {
		t.Errorf("last event %+v, want one failed 502 event naming BinderHub's 404, in a few words", last)
	}
	for _, e := range events[:len(events)-1] {
		if e.Phase == sse.PhaseFailed || e.Phase == sse.PhaseReady {
			t.Errorf("the stream ended before its last event: %+v", events)
		}
	}
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total", "reason", "failed"); got != 1 {
		t.Errorf(`binderguard_stale_fallbacks_total{reason="failed"} = %v, want 1 (the test must take the fallback after the stream started)`, got)
	}
	<-leader
}
