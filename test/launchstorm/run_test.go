package launchstorm

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/binderguard/binderguard/proxy/sse"
)

// script is a scripted BinderHub: the repository name in
// /build/gh/<org>/<repo>/<ref> picks the behaviour.
type script struct {
	tokens   atomic.Int64
	mu       sync.Mutex
	attempts map[string]int // by X-Client header
	headers  []http.Header
	hosts    []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.hosts = append(s.hosts, r.Host)
	s.mu.Unlock()
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sw := sse.Start(w)
		_ = sw.Write(sse.Failed(400, "Accept must be text/event-stream"))
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/build/gh/"), "/")
	if len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	switch parts[1] {
	case "ready":
		sw := sse.Start(w)
		for _, p := range []string{"waiting", "fetching", "building", "built", "launching"} {
			_ = sw.Write(sse.NewEvent(sse.Payload{Phase: p, Message: p + "\n"}))
		}
		_ = sw.Write(sse.Keepalive)
		n := s.tokens.Add(1)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "ready", Token: fmt.Sprintf("token-%d", n), URL: "http://x/user/u/"}))
		<-r.Context().Done() // BinderHub holds the stream; the client closes
	case "banned":
		w.Header().Set("Retry-After", "30")
		sw := sse.Start(w)
		_ = sw.Write(sse.Failed(403, "Sorry, "+parts[0]+"/banned is not allowed to launch."))
	case "quota":
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "failed", Message: "Too many users running"}))
	case "busy":
		// HTTP 429 on the first try of every client, then a launch.
		s.mu.Lock()
		s.attempts[r.Header.Get("X-Client")]++
		n := s.attempts[r.Header.Get("X-Client")]
		s.mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "ready", Token: fmt.Sprintf("busy-%d", s.tokens.Add(1))}))
	case "notfound":
		http.Error(w, "no such thing", http.StatusNotFound)
	case "close":
		// An abrupt close in the middle of the stream.
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "waiting"}))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case "end":
		// A clean end before ready or failed.
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "building", Message: "Step 1\n"}))
	case "garbage":
		sw := sse.Start(w)
		_ = sw.Write(sse.Event{Data: []byte("not json")})
	case "hang":
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "waiting"}))
		<-r.Context().Done()
	case "upper":
		sw := sse.Start(w)
		_ = sw.Write(sse.Event{Data: []byte(`{"phase":"Ready","token":"t"}`)})
	default:
		http.NotFound(w, r)
	}
}

// startScript serves a script on 127.0.0.1; stop closes the server (also
// done at cleanup) so leak checks can run after it.
func startScript(t *testing.T) (s *script, url string, stop func()) {
	t.Helper()
	s = &script{attempts: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL, srv.Close
}

func clientHeader(i int) http.Header { return http.Header{"X-Client": {fmt.Sprint(i)}} }

func TestRun(t *testing.T) {
	tests := map[string]struct {
		opts  Config
		check func(t *testing.T, s Summary)
	}{
		"every ready launch gets its own token": {
			opts: Config{Spec: "gh/org/ready/HEAD", Clients: 20},
			check: func(t *testing.T, s Summary) {
				if s.Ready != 20 || s.DistinctTokens != 20 || s.Failed != 0 || s.Errors != 0 {
					t.Errorf("ready %d tokens %d failed %d errors %d, want 20 20 0 0", s.Ready, s.DistinctTokens, s.Failed, s.Errors)
				}
				if s.P50ReadyS <= 0 || s.MaxReadyS < s.P99ReadyS || s.P99ReadyS < s.P50ReadyS || s.P50TTFBS <= 0 {
					t.Errorf("percentiles out of order: p50 %v p99 %v max %v ttfb %v", s.P50ReadyS, s.P99ReadyS, s.MaxReadyS, s.P50TTFBS)
				}
				want := map[string]int{"waiting": 20, "fetching": 20, "building": 20, "built": 20, "launching": 20, "ready": 20}
				if d := cmp.Diff(want, s.Phases); d != "" {
					t.Errorf("phases (-want +got):\n%s", d)
				}
				for _, r := range s.Results {
					if r.Keepalives != 1 || r.Ready.URL == "" {
						t.Errorf("client %d: keepalives %d url %q, want 1 and a url", r.Index, r.Keepalives, r.Ready.URL)
					}
					// Started + Duration places the launch's end on a timeline.
					if r.Started.IsZero() || r.Duration < r.TimeToReady || r.TimeToReady <= 0 {
						t.Errorf("client %d: started %v, duration %v, time to ready %v; want a duration of at least the time to ready",
							r.Index, r.Started, r.Duration, r.TimeToReady)
					}
				}
			},
		},
		"a failed event ends the launch with its status code": {
			opts: Config{Spec: "gh/org/banned/HEAD", Clients: 5},
			check: func(t *testing.T, s Summary) {
				if s.Failed != 5 || s.Non200 != 0 || s.Requests != 5 {
					t.Errorf("failed %d non_200 %d requests %d, want 5 0 5", s.Failed, s.Non200, s.Requests)
				}
				if d := cmp.Diff(map[string]int{"403": 5}, s.ByStatus); d != "" {
					t.Errorf("by_status (-want +got):\n%s", d)
				}
				if r := s.Results[0]; r.RetryAfter != "30" || !strings.Contains(r.Message, "not allowed") {
					t.Errorf("retry-after %q message %q", r.RetryAfter, r.Message)
				}
			},
		},
		"a failed event without a status code counts as none": {
			opts: Config{Spec: "gh/org/quota/HEAD", Clients: 2},
			check: func(t *testing.T, s Summary) {
				if d := cmp.Diff(map[string]int{"none": 2}, s.ByStatus); d != "" {
					t.Errorf("by_status (-want +got):\n%s", d)
				}
			},
		},
		"an HTTP 429 without retry is a failed launch from a non-200 answer": {
			opts: Config{Spec: "gh/org/busy/HEAD", Clients: 3, Headers: clientHeader},
			check: func(t *testing.T, s Summary) {
				if s.Failed != 3 || s.Non200 != 3 || s.Retries != 0 {
					t.Errorf("failed %d non_200 %d retries %d, want 3 3 0", s.Failed, s.Non200, s.Retries)
				}
				if d := cmp.Diff(map[string]int{"429": 3}, s.ByStatus); d != "" {
					t.Errorf("by_status (-want +got):\n%s", d)
				}
			},
		},
		"with retry an HTTP 429 is retried like the JS client and then launches": {
			opts: Config{Spec: "gh/org/busy/HEAD", Clients: 3, Retry: true, Headers: clientHeader},
			check: func(t *testing.T, s Summary) {
				if s.Ready != 3 || s.Retries != 3 || s.Requests != 6 || s.DistinctTokens != 3 {
					t.Errorf("ready %d retries %d requests %d tokens %d, want 3 3 6 3", s.Ready, s.Retries, s.Requests, s.DistinctTokens)
				}
			},
		},
		"with retry an HTTP 404 is still final": {
			opts: Config{Spec: "gh/org/notfound/HEAD", Clients: 1, Retry: true},
			check: func(t *testing.T, s Summary) {
				if s.Failed != 1 || s.Requests != 1 || s.ByStatus["404"] != 1 {
					t.Errorf("failed %d requests %d by_status %v, want 1 1 404:1", s.Failed, s.Requests, s.ByStatus)
				}
			},
		},
		"an abrupt close is an error": {
			opts: Config{Spec: "gh/org/close/HEAD", Clients: 3},
			check: func(t *testing.T, s Summary) {
				if s.Errors != 3 || s.Phases["waiting"] != 3 {
					t.Errorf("errors %d waiting %d, want 3 3", s.Errors, s.Phases["waiting"])
				}
			},
		},
		"a stream that ends before ready is an error saying so": {
			opts: Config{Spec: "gh/org/end/HEAD", Clients: 1},
			check: func(t *testing.T, s Summary) {
				if s.Errors != 1 || !strings.Contains(s.Results[0].Message, "closed unexpectedly") {
					t.Errorf("errors %d message %q", s.Errors, s.Results[0].Message)
				}
			},
		},
		"a malformed event is an error": {
			opts: Config{Spec: "gh/org/garbage/HEAD", Clients: 1},
			check: func(t *testing.T, s Summary) {
				if s.Errors != 1 || !strings.Contains(s.Results[0].Message, "malformed event") {
					t.Errorf("errors %d message %q", s.Errors, s.Results[0].Message)
				}
			},
		},
		"a launch that never ends times out as an error": {
			opts: Config{Spec: "gh/org/hang/HEAD", Clients: 2, Timeout: 300 * time.Millisecond},
			check: func(t *testing.T, s Summary) {
				if s.Errors != 2 || !strings.Contains(s.Results[0].Message, "timed out") {
					t.Errorf("errors %d message %q", s.Errors, s.Results[0].Message)
				}
			},
		},
		"phases are lowercased as the JS client does": {
			opts: Config{Spec: "gh/org/upper/HEAD", Clients: 1},
			check: func(t *testing.T, s Summary) {
				if s.Ready != 1 {
					t.Errorf("ready %d, want 1 (%+v)", s.Ready, s.Results[0])
				}
			},
		},
		"mix launches are summarised apart, per spec": {
			opts: Config{Spec: "gh/org/ready/HEAD", Clients: 2, Mix: []MixEntry{
				{Spec: "gh/other/ready/HEAD", Clients: 3, Interval: Duration(10 * time.Millisecond)},
				{Spec: "gh/other/banned/HEAD", Clients: 2, Ramp: Duration(20 * time.Millisecond)},
			}},
			check: func(t *testing.T, s Summary) {
				if s.Clients != 2 || s.Ready != 2 || s.Mix == nil {
					t.Fatalf("main clients %d ready %d mix %v", s.Clients, s.Ready, s.Mix)
				}
				if s.Mix.Clients != 5 || s.Mix.Ready != 3 || s.Mix.Failed != 2 {
					t.Errorf("mix clients %d ready %d failed %d, want 5 3 2", s.Mix.Clients, s.Mix.Ready, s.Mix.Failed)
				}
				if got := s.Mix.Specs["gh/other/banned/HEAD"].Failed; got != 2 {
					t.Errorf("mix banned spec failed = %d, want 2", got)
				}
				for _, r := range s.Mix.Results {
					if r.Index < 2 {
						t.Errorf("mix client numbered %d, want >= 2", r.Index)
					}
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			_, url, stop := startScript(t)
			defer stop()
			tc.opts.URL = url
			tracker := NewTracker()
			tc.opts.Tracker = tracker
			s, err := Run(context.Background(), tc.opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			tc.check(t, s)
			counts := tracker.Snapshot()
			if got := counts["ready"] + counts["failed"] + counts["error"]; got != tc.opts.Clients+len(s.mixResults()) {
				t.Errorf("tracker ends with %v, want every client ready, failed or error", counts)
			}
		})
	}
}

func (s Summary) mixResults() []Result {
	if s.Mix == nil {
		return nil
	}
	return s.Mix.Results
}

func TestRunSendsTheJSClientsRequest(t *testing.T) {
	sc, url, _ := startScript(t)
	_, err := Run(context.Background(), Config{URL: url + "/", Spec: "gh/org/ready/HEAD", Clients: 1,
		Headers: func(int) http.Header {
			return http.Header{"Cookie": {"a=b"}, "Accept": {"text/html"}, "Host": {"binder.example.org"}}
		}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.headers) != 1 {
		t.Fatalf("%d requests, want 1", len(sc.headers))
	}
	h := sc.headers[0]
	if h.Get("Accept") != "text/event-stream" || h.Get("Cookie") != "a=b" {
		t.Errorf("accept %q cookie %q, want text/event-stream and the caller's cookie", h.Get("Accept"), h.Get("Cookie"))
	}
	if sc.hosts[0] != "binder.example.org" {
		t.Errorf("host %q, want the caller's", sc.hosts[0])
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	_, url, _ := startScript(t)
	tests := map[string]struct {
		opts    Config
		wantErr string
	}{
		"no url":               {opts: Config{Spec: "gh/a/b/HEAD", Clients: 1}, wantErr: "url is empty"},
		"a url without scheme": {opts: Config{URL: "127.0.0.1:8080", Spec: "gh/a/b/HEAD", Clients: 1}, wantErr: "malformed url"},
		"a malformed spec":     {opts: Config{URL: url, Spec: "gh", Clients: 1}, wantErr: "malformed spec"},
		"no clients":           {opts: Config{URL: url, Spec: "gh/a/b/HEAD"}, wantErr: "at least 1"},
		"a bad mix entry":      {opts: Config{URL: url, Spec: "gh/a/b/HEAD", Clients: 1, Mix: []MixEntry{{Spec: "x"}}}, wantErr: "mix entry 0"},
		"an unreachable url":   {opts: Config{URL: "http://127.0.0.1:1", Spec: "gh/a/b/HEAD", Clients: 1}, wantErr: "cannot reach"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRunFetchesStats(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/build/", &script{attempts: map[string]int{}})
	mux.HandleFunc("/_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"peak_build_watchers": 7}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s, err := Run(context.Background(), Config{URL: srv.URL, Spec: "gh/a/ready/HEAD", Clients: 1, StatsURL: srv.URL + "/_sim/stats"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if string(s.SimStats) != `{"peak_build_watchers": 7}` || s.StatsError != "" {
		t.Errorf("sim stats %s (error %q)", s.SimStats, s.StatsError)
	}
}

func TestRunEndsWhenCancelled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	_, url, stop := startScript(t)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	s, err := Run(ctx, Config{URL: url, Spec: "gh/org/hang/HEAD", Clients: 4, Ramp: time.Hour})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Errors != 4 {
		t.Errorf("errors %d, want 4 (cancelled or not started)", s.Errors)
	}
}
