package fakebinder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// Each injected fault does what it says, to matching specs only, and
// clearing it restores BinderHub's behaviour.
func TestInjectedFaults(t *testing.T) {
	cfg := fast()
	cfg.BuildTime = 600 * time.Millisecond
	cfg.KeepaliveInterval = 50 * time.Millisecond
	ts := startServer(t, cfg)

	set := func(f Fault) {
		t.Helper()
		if err := ts.SetFault(f); err != nil {
			t.Fatal(err)
		}
	}
	// raw reads the whole answer to a /build for up to d.
	raw := func(path string, d time.Duration) (int, http.Header, []byte, time.Duration, error) {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		start := time.Now()
		resp, err := ts.client.Do(req)
		if err != nil {
			return 0, nil, nil, time.Since(start), err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b, time.Since(start), err
	}

	t.Run("status", func(t *testing.T) {
		set(Fault{Mode: FaultStatus, Status: 503, RetryAfter: 7})
		code, h, body, _, err := raw("/build/gh/o/r/HEAD", 5*time.Second)
		if err != nil || code != 503 || h.Get("Retry-After") != "7" || bytes.Contains(body, []byte("data:")) {
			t.Errorf("status fault: %d %q %q %v", code, h.Get("Retry-After"), body, err)
		}
	})
	t.Run("slow headers", func(t *testing.T) {
		set(Fault{Mode: FaultSlowHeaders, Delay: 400 * time.Millisecond})
		r := ts.launch(t.Context(), "/build/gh/o/slow/HEAD", nil)
		if r.Err != nil || r.last().Phase != sse.PhaseReady {
			t.Errorf("slow headers: %v %v, want a normal launch", r.phases(), r.Err)
		}
		// The delay is before any byte, so a short deadline sees nothing.
		_, _, _, _, err := raw("/build/gh/o/slow2/HEAD", 200*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a client giving up after 200 ms got %v, want its own deadline before headers", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		set(Fault{Mode: FaultClose})
		r := ts.launch(t.Context(), "/build/gh/o/close/HEAD", nil)
		if r.Err != nil || len(r.Events) != 2 || r.Events[0].Phase != sse.PhaseWaiting {
			t.Errorf("close: %v %v, want waiting and one log line, then a clean end", r.phases(), r.Err)
		}
	})
	t.Run("stall", func(t *testing.T) {
		set(Fault{Mode: FaultStall, After: 1})
		_, _, body, took, err := raw("/build/gh/o/stall/HEAD", 1500*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || took < 1400*time.Millisecond {
			t.Errorf("stall: ended after %v with %v, want the client's deadline", took, err)
		}
		if n := bytes.Count(body, []byte("data:")); n != 1 {
			t.Errorf("stall: %d events before the stall, want 1: %q", n, body)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		set(Fault{Mode: FaultGarbage})
		_, _, body, _, _ := raw("/build/gh/o/junk/HEAD", time.Second)
		if !bytes.Contains(body, []byte("<html>")) || bytes.Count(body, []byte("data:")) != 2 {
			t.Errorf("garbage: %q", body)
		}
	})
	t.Run("reset", func(t *testing.T) {
		set(Fault{Mode: FaultReset})
		if _, _, _, _, err := raw("/build/gh/o/gone/HEAD", 5*time.Second); err == nil {
			t.Error("reset: got an answer, want the connection closed without one")
		}
	})
	t.Run("only matching specs", func(t *testing.T) {
		set(Fault{Mode: FaultStatus, Status: 500, Specs: "^gh/bad/"})
		if code, _, _, _, _ := raw("/build/gh/bad/r/HEAD", 5*time.Second); code != 500 {
			t.Errorf("matching spec got %d, want the fault", code)
		}
		if r := ts.launch(t.Context(), "/build/gh/good/r/HEAD", nil); r.last().Phase != sse.PhaseReady {
			t.Errorf("other spec: %v %v, want ready", r.phases(), r.Err)
		}
	})
	t.Run("cleared", func(t *testing.T) {
		set(Fault{})
		if r := ts.launch(t.Context(), "/build/gh/o/after/HEAD", nil); r.last().Phase != sse.PhaseReady {
			t.Errorf("after clearing: %v %v, want ready", r.phases(), r.Err)
		}
	})
	if err := ts.SetFault(Fault{Mode: "explode"}); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown mode: %v, want ErrConfig", err)
	}
	if err := ts.SetFault(Fault{Mode: FaultStatus, Status: 200}); !errors.Is(err, ErrConfig) {
		t.Errorf("status 200: %v, want ErrConfig", err)
	}
	// Over HTTP.
	resp, err := http.Post(ts.URL+"/_sim/fault", "application/json", strings.NewReader(`{"mode":"close","after":3}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /_sim/fault: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = http.Post(ts.URL+"/_sim/fault", "application/json", strings.NewReader(`{"mode":"close","bogus":1}`))
	if resp.StatusCode != 400 {
		t.Errorf("unknown field: status %d, want 400", resp.StatusCode)
	}
	resp.Body.Close()
	if st := ts.Stats(); st.Faulted < 6 {
		t.Errorf("faulted = %d, want every faulted request counted", st.Faulted)
	}
}
