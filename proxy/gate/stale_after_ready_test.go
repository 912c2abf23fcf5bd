package gate_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// A stale launch's client that keeps reading after ready (it closes only
// when BinderHub's stream ends) gets nothing after ready: BinderHub
// closing its stream after ready ends the launch, it is no failure to fall
// back from into a second, held launch.
func TestStaleLaunchEndsAtReadyWhenBinderHubCloses(t *testing.T) {
	const bBuild = 3 * time.Second
	s := startBuilding(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild)
	ctx, cancel := context.WithTimeout(t.Context(), 2*bBuild)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.gateURL+"/build/"+s.withToken(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = s.origin.Clone()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Real-Ip", clientIP(7))
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var phases []string
	rd := sse.NewReader(resp.Body)
	for {
		e, err := rd.Next()
		if err != nil {
			break // EOF: the gate ended the stream (or the deadline cut it)
		}
		if !e.IsComment() {
			phases = append(phases, e.Phase)
		}
	}
	readyAt := -1
	for i, p := range phases {
		if p == sse.PhaseReady {
			readyAt = i
			break
		}
	}
	if readyAt < 0 || readyAt != len(phases)-1 {
		t.Errorf("phases %v: want the stream to end at its one ready", phases)
	}
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total"); got != 0 {
		t.Errorf("binderguard_stale_fallbacks_total = %v after a stale launch reached ready, want 0", got)
	}
	<-s.leader
}

// A stale launch is under the same watchdog as every other upstream
// launch: a BinderHub that accepts the launch of the last good commit but
// never answers it costs the launch UpstreamHeaderTimeout, after which it
// is held behind the build, rather than a stream that never answers
// (and a probe that never ends, making every later stale launch wait).
func TestStaleLaunchThatBinderHubNeverAnswersFallsBack(t *testing.T) {
	const bBuild = 4 * time.Second
	hangA := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/"+commitA) {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild, hangA,
		func(c *gate.Config) { c.UpstreamHeaderTimeout = time.Second })
	ctx, cancel := context.WithTimeout(t.Context(), 3*bBuild)
	defer cancel()
	r := s.launch(ctx, s.withToken(t), clientIP(8), s.origin, nil)
	if persistent(r) != commitB || r.err != nil {
		t.Errorf("got commit %q (err %v), phases %v; want B after being held", persistent(r), r.err, r.phases())
	}
	<-s.leader
}

// stallAfterBuilt holds BinderHub's answer to launches of commit A for
// stall after its built event, then drops the stream.
func stallAfterBuilt(stall time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/"+commitA) {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&stallWriter{cutWriter: cutWriter{ResponseWriter: w}, stall: stall, ctx: r.Context()}, r)
		})
	}
}

type stallWriter struct {
	cutWriter
	stall time.Duration
	ctx   context.Context
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if s.cut {
		select {
		case <-time.After(s.stall):
		case <-s.ctx.Done():
		}
	}
	return s.cutWriter.Write(b)
}

// A stale launch that falls back after its own launch failed was held at
// the gate meanwhile: if the build is over by then it leads or passes,
// and must not present a build_token that expired while it was held.
func TestStaleFallbackNeverPresentsAnExpiredToken(t *testing.T) {
	const bBuild = 2 * time.Second
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild, stallAfterBuilt(2*bBuild))
	// Valid on arrival, expired when the stale launch falls back.
	path := s.spec + "?build_token=" + buildToken(t, "s3cret", s.spec, "binder.test", time.Now().Add(bBuild+time.Second))
	r := s.launch(t.Context(), path, clientIP(9), s.origin, nil)
	if persistent(r) != commitB || r.err != nil {
		t.Errorf("got commit %q (err %v, failed %+v), phases %v; want B", persistent(r), r.err, r.failed, r.phases())
	}
	if got := metricValue(t, s.reg, "binderguard_stale_fallbacks_total", "reason", "failed"); got != 1 {
		t.Errorf(`binderguard_stale_fallbacks_total{reason="failed"} = %v, want 1`, got)
	}
	if st := s.sim.Stats(); st.BuildTokensRejected != 0 {
		t.Errorf("simulator rejected %d build tokens, want 0", st.BuildTokensRejected)
	}
	<-s.leader
}

// refuseIP answers launches of commit A from ip as BinderHub's per-IP
// rate limit does (BaseHandler.check_rate_limit: a 429 failed event).
func refuseIP(ip string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/"+commitA) || r.Header.Get("X-Real-Ip") != ip {
				next.ServeHTTP(w, r)
				return
			}
			sw := sse.Start(w)
			_ = sw.Write(sse.NewEvent(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusTooManyRequests, Message: "Rate limit exceeded.\n"}))
		})
	}
}

// BinderHub refusing one client's stale launch (its per-IP rate limit,
// which a stale launch meets because it carries no build_token) says
// nothing about the last good image: the other launches still go stale.
func TestStaleLaunchRefusedForOneClientDoesNotStopTheOthers(t *testing.T) {
	const bBuild = 4 * time.Second
	refused := clientIP(200)
	s := startBuildingVia(t, gate.StaticPolicies(staleLaunch(true), gate.Global{}), bBuild, refuseIP(refused))
	first := make(chan result, 1)
	go func() { first <- s.launch(t.Context(), s.withToken(t), refused, s.origin, nil) }()
	waitFor(t, "the refused launch to fall back", func() bool {
		return metricValue(t, s.reg, "binderguard_stale_fallbacks_total") == 1
	})
	for _, r := range s.storm(t, 5) {
		if got := persistent(r); got != commitA {
			t.Errorf("client %s got commit %q (phases %v), want A", r.ip, got, r.phases())
		}
	}
	if r := <-first; persistent(r) != commitB {
		t.Errorf("the refused client got %q (phases %v), want B after being held", persistent(r), r.phases())
	}
	<-s.leader
}
