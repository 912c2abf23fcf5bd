// Package heldclient is the client half of the held-launch memory
// benchmarks: the test binary re-runs itself as a child process that opens
// N launch streams, prints "held" once each has its first event, and holds
// them until its stdin closes. The client lives in its own process so its
// memory is never counted as the server's.
//
// It is for tests and benchmarks only; it must never be imported by a
// binary.
package heldclient

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/binderguard/binderguard/proxy/sse"
)

// Transport is how the child reaches the server.
type Transport string

const (
	// H2C multiplexes every stream over cleartext HTTP/2, as Envoy talks
	// to the gate.
	H2C Transport = "h2c"
	// HTTP1 gives each stream its own HTTP/1.1 connection, as browsers
	// reach Envoy.
	HTTP1 Transport = "http1"
)

const (
	envURL       = "BINDERGUARD_HELD_CLIENT_URL"
	envN         = "BINDERGUARD_HELD_CLIENT_N"
	envTransport = "BINDERGUARD_HELD_CLIENT_TRANSPORT"
)

// Requested reports whether this process was started by Command: a
// TestMain then calls os.Exit(Run()) instead of running the tests.
func Requested() bool { return os.Getenv(envURL) != "" }

// Hold re-runs the test binary as a held client of n launches of url and
// returns once each has its first event. release lets the launches go and
// waits for the child to end.
func Hold(ctx context.Context, url string, n int, t Transport) (release func() error, err error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envURL+"="+url, envN+"="+strconv.Itoa(n), envTransport+"="+string(t))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("starting the held client: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting the held client: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the held client: %w", err)
	}
	release = func() error {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("held client: %w", err)
		}
		return nil
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || strings.TrimSpace(line) != "held" {
		_ = release()
		return nil, fmt.Errorf("held client said %q, want held: %v", line, err)
	}
	return release, nil
}

// Run is the child: it returns the process's exit code.
func Run() int {
	u := os.Getenv(envURL)
	n, err := strconv.Atoi(os.Getenv(envN))
	if err != nil {
		fmt.Fprintln(os.Stderr, "held client: bad count:", err)
		return 2
	}
	var c *http.Client
	switch t := Transport(os.Getenv(envTransport)); t {
	case H2C:
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		c = &http.Client{Transport: &http.Transport{Protocols: &p}}
	case HTTP1:
		var l syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < uint64(n)+100 {
			l.Cur = min(l.Max, uint64(n)+100)
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		}
		c = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	default:
		fmt.Fprintf(os.Stderr, "held client: unknown transport %q\n", t)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first, done sync.WaitGroup
	errs := make(chan error, n)
	dialing := make(chan struct{}, 256) // streams being opened at once
	for i := range n {
		first.Add(1)
		done.Add(1)
		dialing <- struct{}{}
		go func() {
			defer done.Done()
			signalled := false
			signal := func() {
				if !signalled {
					signalled = true
					<-dialing
					first.Done()
				}
			}
			defer signal()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			req.Header.Set("Accept", "text/event-stream")
			// One address per launch, as distinct users (the gate trusts
			// X-Real-Ip from loopback peers; Envoy overwrites it).
			req.Header.Set("X-Real-Ip", fmt.Sprintf("10.%d.%d.%d", ((i+1)>>16)&255, ((i+1)>>8)&255, (i+1)&255))
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			rd := sse.NewReader(bufio.NewReader(resp.Body))
			for {
				e, err := rd.Next()
				if err != nil {
					return
				}
				if e.IsComment() {
					continue
				}
				if p, err := e.Decode(); err == nil && p.Phase == sse.PhaseFailed {
					errs <- fmt.Errorf("launch refused: %s", p.Message)
					return
				}
				signal()
			}
		}()
	}
	first.Wait()
	select {
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "held client:", err)
		return 1
	default:
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	done.Wait()
	return 0
}
