package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// readyServer answers every /build with a ready event carrying a fresh
// token, except gh/x/banned which gets BinderHub's ban answer (a failed
// event without status_code).
func readyServer(t *testing.T) string {
	t.Helper()
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/build/", func(w http.ResponseWriter, r *http.Request) {
		sw := sse.Start(w)
		if strings.Contains(r.URL.Path, "banned") {
			_ = sw.Write(sse.Failed(0, "Sorry, x/banned is not allowed to launch. Please contact admins for more info!"))
			return
		}
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "waiting"}))
		_ = sw.Write(sse.NewEvent(sse.Payload{Phase: "ready", Token: fmt.Sprint("t", n.Add(1))}))
	})
	mux.HandleFunc("/_sim/stats", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"launches":3}`) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRunPrintsTheJSONSummary(t *testing.T) {
	url := readyServer(t)
	mix := filepath.Join(t.TempDir(), "mix.yaml")
	if err := os.WriteFile(mix, []byte("- spec: gh/x/banned/HEAD\n  clients: 2\n  interval: 10ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--url", url, "--spec", "gh/a/b/HEAD", "--clients", "3",
		"--mix", mix, "--stats-url", url + "/_sim/stats", "--header", "Cookie: a=b"}, &stdout, &stderr, false)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q, want nothing when stdout is not a terminal", stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"clients", "ready", "failed", "errors", "by_status", "distinct_tokens",
		"p50_ready_s", "p90_ready_s", "p99_ready_s", "max_ready_s", "p50_ttfb_s", "p99_ttfb_s", "mix", "sim_stats"} {
		if _, ok := got[k]; !ok {
			t.Errorf("summary lacks %q:\n%s", k, stdout.String())
		}
	}
	if got["ready"] != 3.0 || got["distinct_tokens"] != 3.0 {
		t.Errorf("ready %v distinct_tokens %v, want 3 3", got["ready"], got["distinct_tokens"])
	}
	m := got["mix"].(map[string]any)
	if m["failed"] != 2.0 {
		t.Errorf("mix failed %v, want 2", m["failed"])
	}
}

func TestRunShowsProgressOnATerminal(t *testing.T) {
	url := readyServer(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--url", url, "--spec", "gh/a/b/HEAD", "--clients", "2"}, &stdout, &stderr, true); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ready 2") {
		t.Errorf("progress %q, want a final line with ready 2", stderr.String())
	}
	if !json.Valid(stdout.Bytes()) {
		t.Errorf("stdout is not JSON: %s", stdout.String())
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	url := readyServer(t)
	tests := map[string]struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		"an unknown flag":            {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--bogus"}, wantCode: 2, wantErr: "flag provided but not defined: -bogus"},
		"no url":                     {args: []string{"--spec", "gh/a/b/HEAD"}, wantCode: 2, wantErr: "--url and --spec are required"},
		"a malformed spec":           {args: []string{"--url", url, "--spec", "nope"}, wantCode: 2, wantErr: "malformed spec"},
		"zero clients":               {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--clients", "0"}, wantCode: 2, wantErr: "--clients must be at least 1"},
		"a negative client count":    {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--clients", "-5"}, wantCode: 2, wantErr: "--clients must be at least 1"},
		"a non-numeric client count": {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--clients", "many"}, wantCode: 2, wantErr: "invalid value"},
		"a missing mix file":         {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--mix", "/nonexistent.yaml"}, wantCode: 2, wantErr: "reading mix file"},
		"a malformed url":            {args: []string{"--url", "ftp://x", "--spec", "gh/a/b/HEAD"}, wantCode: 2, wantErr: "malformed url"},
		"an unreachable url":         {args: []string{"--url", "http://127.0.0.1:1", "--spec", "gh/a/b/HEAD"}, wantCode: 1, wantErr: "cannot reach http://127.0.0.1:1"},
		"a stray argument":           {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "extra"}, wantCode: 2, wantErr: "unexpected argument"},
		"a malformed header":         {args: []string{"--url", url, "--spec", "gh/a/b/HEAD", "--header", "nocolon"}, wantCode: 2, wantErr: "Name: value"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr, false)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			msg := stderr.String()
			if !strings.Contains(msg, tc.wantErr) || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "launchstorm: ") {
				t.Errorf("stderr %q, want one line 'launchstorm: ...' containing %q", msg, tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// The live line shows the simulator's build watchers next to the phases,
// read from --stats-url, so a storm shows whether launches collapse.
func TestProgressShowsTheSimulatorsBuildWatchers(t *testing.T) {
	sim, err := fakebinder.New(fakebinder.Config{BuildTime: 2 * time.Second, LaunchTime: 10 * time.Millisecond, ReadyHold: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	defer sim.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"--url", srv.URL, "--spec", "gh/a/b/HEAD", "--clients", "3", "--stats-url", srv.URL + "/_sim/stats"}
	if code := run(context.Background(), args, &stdout, &stderr, true); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "upstream build watchers 3") {
		t.Errorf("progress %q, want the 3 build watchers the storm opened", stderr.String())
	}
}

func TestProgressLine(t *testing.T) {
	counts := map[string]int{"ready": 2}
	if got := progressLine(time.Second, counts, -1); strings.Contains(got, "watchers") {
		t.Errorf("without stats: %q mentions watchers", got)
	}
	if got := progressLine(time.Second, counts, 1); !strings.HasSuffix(got, "| upstream build watchers 1") {
		t.Errorf("with stats: %q", got)
	}
}
