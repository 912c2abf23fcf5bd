package gate_test

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// scripted is an upstream that gives its first request (the leader) a
// build whose log carries private fields, and every later request a
// launch of its own.
type scripted struct {
	requests atomic.Int64
	release  chan struct{} // closed to let the leader's build finish
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	sw := sse.Start(w)
	send := func(data string) { _ = sw.Write(sse.Event{Data: []byte(data)}) }
	ip := r.Header.Get("X-Real-Ip")
	if n == 1 {
		send(`{"phase":"waiting","message":"Waiting for build to start...\n"}`)
		send(`{"phase":"building","message":"Step 1/2\n"}`)
		send(`{"phase":"building","message":"leak?","token":"LEAKED-TOKEN"}`)
		send(`{"phase":"unknown","message":"leak?","url":"http://leaked/"}`)
		send(`{"phase":"fetching","message":"leak?","binder_client_ip":"` + ip + `"}`)
		send(`{"phase":"waiting","message":"private waiting"}`)
		<-s.release
		send(`{"phase":"building","message":"Step 2/2\n"}`)
		time.Sleep(50 * time.Millisecond)
		send(`{"phase":"built","message":"Built image, launching...\n","imageName":"img:1"}`)
	} else {
		send(`{"phase":"built","message":"Found built image, launching...\n","imageName":"img:1"}`)
	}
	send(`{"phase":"launching","message":"Launching server...\n"}`)
	send(`{"phase":"ready","message":"ok","token":"tok-` + ip + `","url":"http://hub/user/` + ip + `/","binder_client_ip":"` + ip + `"}`)
	<-r.Context().Done()
}

func TestFollowersNeverSeeAnotherClientsPrivateEvents(t *testing.T) {
	up := &scripted{release: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	defer upSrv.CloseClientConnections()
	u, _ := url.Parse(upSrv.URL)
	reg := prometheus.NewRegistry()
	g, err := gate.New(gate.Config{Upstream: u, Policies: gate.StaticPolicies(testLaunch(), gate.Global{}), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := gate.NewServer("", g)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/build/gh/o/r/HEAD"
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	started := make(chan struct{})
	var once sync.Once
	leader := make(chan result, 1)
	go func() {
		leader <- launchURL(ctx, http.DefaultClient, base, "10.0.0.1", nil, func(p sse.Payload) {
			if p.Message == "private waiting" {
				once.Do(func() { close(started) })
			}
		})
	}()
	<-started
	const n = 20
	followers := make([]chan result, n)
	for i := range followers {
		followers[i] = make(chan result, 1)
		go func() { followers[i] <- launchURL(ctx, http.DefaultClient, base, clientIP(100+i), nil, nil) }()
	}
	waitFor(t, "followers to be held", func() bool { return gauge(reg, "binderguard_waiters") == n })
	close(up.release)

	l := <-leader
	if l.ready == nil || l.ready.Token != "tok-10.0.0.1" || l.count(sse.PhaseBuilding) != 3 {
		t.Errorf("leader saw %v, ready %+v; want its whole stream", l.phases(), l.ready)
	}
	for _, ch := range followers {
		r := <-ch
		if r.ready == nil || r.ready.Token != "tok-"+r.ip {
			t.Errorf("follower %s: ready %+v, want its own", r.ip, r.ready)
		}
		var logs []string
		for _, e := range r.events {
			if e.Token != "" && e.Phase != sse.PhaseReady || e.URL != "" && e.Phase != sse.PhaseReady || strings.Contains(e.Message, "leak") || e.Message == "private waiting" {
				t.Errorf("follower %s got a private event of the leader: %+v", r.ip, e)
			}
			if e.Phase == sse.PhaseBuilding {
				logs = append(logs, e.Message)
			}
		}
		if len(logs) != 2 || r.count(sse.PhaseBuilt) != 1 || r.count(sse.PhaseReady) != 1 || r.events[0].Phase != sse.PhaseWaiting {
			t.Errorf("follower %s: phases %v, log %q; want waiting, the two shared log lines, its own built and ready", r.ip, r.phases(), logs)
		}
	}
	if got := up.requests.Load(); got != n+1 {
		t.Errorf("upstream requests = %d, want one per client (%d)", got, n+1)
	}
}

func TestUpstreamErrorStatusesBecomeFailedEvents(t *testing.T) {
	tests := map[string]struct {
		status      int
		retryAfter  string
		wantStatus  int // HTTP status the client sees
		wantFailed  int // status_code of the failed event, 0 for none
		wantRetryAt string
	}{
		"a 503 from upstream is a failed event, not a bare 5xx the client garbles": {status: 503, retryAfter: "7", wantStatus: 200, wantFailed: 503, wantRetryAt: "7"},
		"a 502 without Retry-After gets one":                                       {status: 502, wantStatus: 200, wantFailed: 502, wantRetryAt: "10"},
		"a 429 from upstream is a failed event":                                    {status: 429, wantStatus: 200, wantFailed: 429, wantRetryAt: "10"},
		"a 404 passes unchanged":                                                   {status: 404, wantStatus: 404},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				http.Error(w, "upstream says no", tc.status)
			}))
			defer up.Close()
			u, _ := url.Parse(up.URL)
			// Collapse off: every launch passes; the leader path is covered
			// by the same helper.
			for _, collapseOn := range []bool{false, true} {
				l := testLaunch()
				l.Collapse = collapseOn
				g, err := gate.New(gate.Config{Upstream: u, Policies: gate.StaticPolicies(l, gate.Global{})})
				if err != nil {
					t.Fatal(err)
				}
				rec := httptest.NewRecorder()
				g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/build/gh/o/r/HEAD", nil))
				g.Close()
				if rec.Code != tc.wantStatus {
					t.Errorf("collapse %v: status %d, want %d", collapseOn, rec.Code, tc.wantStatus)
				}
				if tc.wantFailed == 0 {
					continue
				}
				e, err := sse.NewReader(rec.Body).Next()
				p, _ := e.Decode()
				if err != nil || p.Phase != sse.PhaseFailed || p.StatusCode != tc.wantFailed || rec.Header().Get("Retry-After") != tc.wantRetryAt {
					t.Errorf("collapse %v: event %+v (%v), Retry-After %q", collapseOn, p, err, rec.Header().Get("Retry-After"))
				}
			}
		})
	}
}
