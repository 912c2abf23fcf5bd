package compat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// server is a scripted BinderHub: the repository name in
// /build/gh/<org>/<repo>/<ref> picks the answer. It counts requests per
// path so tests can check the client's own count.
type server struct {
	mu       sync.Mutex
	requests map[string]int
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	s.mu.Unlock()
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sw := sse.Start(w)
		_ = sw.Write(sse.Failed(400, "Accept must be text/event-stream"))
		return
	}
	repo := strings.Split(strings.TrimPrefix(r.URL.Path, "/build/gh/"), "/")[1]
	switch repo {
	case "ready", "held":
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "waiting", Message: "Waiting for build to start...\n"}))
		if repo == "held" {
			// A follower held through a build: keepalives, replayed log
			// lines, then its own launch once released.
			for range 4 {
				time.Sleep(250 * time.Millisecond)
				_ = sw.Write(sse.Keepalive)
			}
			_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "building", Message: "Step 1/9\n"}))
			_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "built", Message: "Found built image, launching...\n"}))
		}
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "launching", Message: "Launching server...\n"}))
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "ready", Message: "server running\n", Token: "tok-" + repo, URL: "http://127.0.0.1/user/x/"}))
		<-r.Context().Done() // BinderHub keeps the stream open; the client closes it
	case "shed":
		w.Header().Set("Retry-After", "10")
		sw := sse.Start(w)
		_ = sw.Write(sse.Failed(429, "Too many launches of this repository are waiting; retry in 10 s"))
	case "banned":
		// binderguard's ban answer; BinderHub's own has no status_code.
		sw := sse.Start(w)
		_ = sw.Write(sse.Failed(403, "Sorry, org/banned is not allowed to launch. Please contact admins for more info!"))
	case "http429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many launches, retry later", http.StatusTooManyRequests)
	case "http503":
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
	case "http403":
		http.Error(w, "banned", http.StatusForbidden)
	case "cut":
		sw := sse.Start(w)
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "waiting", Message: "Waiting for build to start...\n"}))
	default:
		http.NotFound(w, r)
	}
}

func start(t *testing.T) (*server, string) {
	t.Helper()
	if _, err := Check(mustDir(t)); err != nil {
		t.Fatal(err) // not a skip: the compatibility proof must not vanish silently
	}
	s := &server{requests: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func mustDir(t *testing.T) string {
	t.Helper()
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOfficialClient records what the pinned official client does with each
// kind of answer binderguard or BinderHub can give.
func TestOfficialClient(t *testing.T) {
	srv, url := start(t)
	tests := map[string]struct {
		spec  string
		check func(t *testing.T, r Result)
	}{
		"a ready stream reaches ready and the UI closes it": {
			spec: "gh/org/ready/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "ready" && r.Token == "tok-ready" && r.ClosedBy == "ui" && r.RequestsMade == 1,
					"final %q token %q closed by %q requests %d, want ready tok-ready ui 1", r.FinalPhase, r.Token, r.ClosedBy, r.RequestsMade)
			},
		},
		"a held follower reaches ready through keepalives and a late build": {
			spec: "gh/org/held/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, slices.Equal(r.Phases, []string{"waiting", "building", "built", "launching", "ready"}) && r.Token == "tok-held" && r.RequestsMade == 1,
					"phases %v token %q requests %d", r.Phases, r.Token, r.RequestsMade)
			},
		},
		"a shed launch answered with 200 and a failed event stops without retrying and shows the message": {
			spec: "gh/org/shed/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.StatusCode == 429 && r.RequestsMade == 1 && r.ClosedBy == "client",
					"final %q status %d requests %d closed by %q, want failed 429 1 client", r.FinalPhase, r.StatusCode, r.RequestsMade, r.ClosedBy)
				want(t, strings.Contains(r.Message, "retry in 10 s"), "message %q, want the server's", r.Message)
			},
		},
		"a banned launch answered with 200 and a failed event stops without retrying": {
			spec: "gh/org/banned/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.StatusCode == 403 && r.RequestsMade == 1 && strings.Contains(r.Message, "not allowed"),
					"final %q status %d requests %d message %q", r.FinalPhase, r.StatusCode, r.RequestsMade, r.Message)
			},
		},
		// The client's source means to retry every second on HTTP 429 and
		// 5xx, but in the pinned 0.5.0 that path is dead: it checks
		// error.name === "EventStreamRetry", and a class extending Error
		// without setting name has name "Error". So it gives up after one
		// request and the user sees neither the status nor the message.
		"a bare HTTP 429 ends the launch after one request and loses the server's message": {
			spec: "gh/org/http429/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.RequestsMade == 1 && slices.Equal(r.Statuses, []int{429}),
					"final %q requests %d statuses %v, want failed 1 [429]", r.FinalPhase, r.RequestsMade, r.Statuses)
				want(t, r.StatusCode == 0 && !strings.Contains(r.Message, "retry later"),
					"status %d message %q: the pinned client now passes the server's answer on; revisit the rule", r.StatusCode, r.Message)
			},
		},
		"a bare HTTP 503 ends the launch after one request and loses the server's message": {
			spec: "gh/org/http503/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.RequestsMade == 1 && r.StatusCode == 0 && !strings.Contains(r.Message, "unavailable"),
					"final %q requests %d status %d message %q", r.FinalPhase, r.RequestsMade, r.StatusCode, r.Message)
			},
		},
		"a bare HTTP 403 fails at once and loses the server's message": {
			spec: "gh/org/http403/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.RequestsMade == 1 && r.StatusCode == 0 && strings.Contains(r.Message, "Failed to connect to event stream: 403"),
					"final %q requests %d status %d message %q", r.FinalPhase, r.RequestsMade, r.StatusCode, r.Message)
			},
		},
		"a stream cut before ready fails as closed unexpectedly and does not reconnect": {
			spec: "gh/org/cut/HEAD",
			check: func(t *testing.T, r Result) {
				want(t, r.FinalPhase == "failed" && r.RequestsMade == 1 && strings.Contains(r.Message, "closed unexpectedly"),
					"final %q requests %d message %q", r.FinalPhase, r.RequestsMade, r.Message)
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := Launch(ctx, url, tc.spec)
			if err != nil {
				t.Fatalf("Launch: %v", err)
			}
			tc.check(t, r)
			if got := srv.count("/build/" + tc.spec); got != r.RequestsMade {
				t.Errorf("server saw %d requests, client counted %d", got, r.RequestsMade)
			}
			if t.Failed() {
				for _, e := range r.Events {
					t.Logf("event %dms %s", e.TMs, e.Data)
				}
			}
		})
	}
}

func TestLaunchTimesOutAndCloses(t *testing.T) {
	_, url := start(t)
	// A slow stream: "held" sends keepalives for a second before ready.
	r, err := Run(context.Background(), Config{BaseURL: url, Spec: "gh/org/held/HEAD", Timeout: 300 * time.Millisecond, Linger: -1})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Closed || r.ClosedBy != "timeout" || r.FinalPhase != "waiting" {
		t.Errorf("closed %v by %q final %q, want a timeout while waiting", r.Closed, r.ClosedBy, r.FinalPhase)
	}
}

func TestCheckSaysToRunMakeTools(t *testing.T) {
	_, err := Check(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "run make tools") {
		t.Fatalf("Check(empty dir) = %v, want an error saying to run make tools", err)
	}
}

func TestParse(t *testing.T) {
	tests := map[string]struct {
		out     string
		wantErr string
	}{
		"events then a result":    {out: `{"kind":"event","t_ms":1,"data":{"phase":"waiting"}}` + "\n" + `{"kind":"result","final_phase":"waiting","requests_made":1}` + "\n"},
		"no result line":          {out: `{"kind":"event","t_ms":1,"data":{"phase":"waiting"}}` + "\n", wantErr: "no result line"},
		"a line that is not JSON": {out: "Event stream error\n", wantErr: "not JSON"},
		"an unknown kind":         {out: `{"kind":"other"}` + "\n", wantErr: "unknown kind"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := parse([]byte(tc.out))
			if tc.wantErr == "" {
				if err != nil || len(r.Events) != 1 || r.Events[0].Phase != "waiting" || r.RequestsMade != 1 {
					t.Fatalf("parse = %+v, %v", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parse error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func want(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}
