package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBadInputIsOneLineAndExitTwo(t *testing.T) {
	tests := map[string][]string{
		"an unknown flag":           {"--bogus"},
		"a malformed duration":      {"--build-time", "soon"},
		"a pool too small":          {"--pool", "1"},
		"a broken regex":            {"--fail-specs", "("},
		"a negative rate limit":     {"--rate-limit", "-1"},
		"an unknown log level":      {"--log-level", "loud"},
		"a stray argument":          {"extra"},
		"two config errors at once": {"--pool", "1", "--banned-specs", "["},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), args, &stderr); code != 2 {
				t.Errorf("run(%q) = %d; want 2", args, code)
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "fakebinder: ") {
				t.Errorf("stderr = %q; want one line starting with \"fakebinder: \"", out)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stderr); code != 0 {
		t.Errorf("--help exit %d; want 0", code)
	}
	if !strings.Contains(stderr.String(), "-build-time") {
		t.Errorf("--help does not list the flags: %s", stderr.String())
	}
}

func TestListenFailureExitsOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--listen", ln.Addr().String()}, &stderr); code != 1 {
		t.Errorf("listening on a used port: exit %d; want 1 (%s)", code, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func TestServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{mu: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--build-time", "50ms", "--ready-hold", "1h"}, stderr)
	}()
	addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listen address logged: %s", stderr.String())
		}
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/health = %d", resp.StatusCode)
	}
	// A stream held open (ready hold of an hour) must not delay shutdown.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/build/gh/org/repo/HEAD", nil)
	req.Header.Set("Accept", "text/event-stream")
	stream, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel; want 0 (%s)", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fakebinder did not stop after its context was cancelled")
	}
}
