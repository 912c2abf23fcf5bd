package fakebinder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a Server on a real loopback listener.
type testServer struct {
	*Server
	URL    string
	client *http.Client
}

// startServer serves cfg on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 1000}
	ts := &testServer{Server: srv, URL: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		srv.Close()
		tr.CloseIdleConnections()
	})
	return ts
}

// launchResult is what one client saw on a /build stream.
type launchResult struct {
	Status   int
	Header   http.Header
	Events   []sse.Payload
	Comments int
	Err      error
}

func (r launchResult) phases() []string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.Phase)
	}
	return out
}

func (r launchResult) last() sse.Payload {
	if len(r.Events) == 0 {
		return sse.Payload{}
	}
	return r.Events[len(r.Events)-1]
}

// launch opens GET path like the JS client (Accept: text/event-stream)
// and reads events until ready or failed (then closes, as the client
// does), EOF, or ctx ends. hdr may set extra headers.
func (ts *testServer) launch(ctx context.Context, path string, hdr http.Header) launchResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		return launchResult{Err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return launchResult{Err: err}
	}
	defer resp.Body.Close()
	res := launchResult{Status: resp.StatusCode, Header: resp.Header}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return res
		}
		if err != nil {
			res.Err = err
			return res
		}
		if ev.IsComment() {
			res.Comments++
			continue
		}
		p, err := ev.Decode()
		if err != nil {
			res.Err = fmt.Errorf("decoding %q: %w", ev.Data, err)
			return res
		}
		res.Events = append(res.Events, p)
		if p.Phase == sse.PhaseReady || p.Phase == sse.PhaseFailed {
			return res
		}
	}
}

// waitFor polls the server's stats until cond holds or 10 s pass.
func (ts *testServer) waitFor(t testing.TB, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ts.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fast is a Config for wire tests: short build and launch, no long holds.
func fast() Config {
	return Config{
		BuildTime:         300 * time.Millisecond,
		LaunchTime:        20 * time.Millisecond,
		LaunchTimeout:     5 * time.Second,
		LaunchRetries:     1,
		ReadyHold:         10 * time.Millisecond,
		KeepaliveInterval: time.Hour,
	}
}
