package envoyproc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script standing in for Envoy.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindNamesWhatIsMissing(t *testing.T) {
	t.Setenv("ENVOY_BIN", "/nonexistent/envoy")
	t.Setenv("PATH", t.TempDir())
	t.Chdir(t.TempDir())
	_, err := Find()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find() = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"ENVOY_BIN=/nonexistent/envoy", "PATH", "make tools"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindPrefersEnvoyBin(t *testing.T) {
	p := script(t, "exit 0")
	t.Setenv("ENVOY_BIN", p)
	if got, err := Find(); err != nil || got != p {
		t.Fatalf("Find() = %q, %v; want %q", got, err, p)
	}
}

func TestNewRefusesAMissingBinary(t *testing.T) {
	if _, err := New(Config{Binary: "/nonexistent/envoy", Bootstrap: []byte("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("New = %v, want ErrNotFound", err)
	}
}

func TestRunRestartsADyingProcessWithBackoff(t *testing.T) {
	s, err := New(Config{Binary: script(t, "exit 3"), Bootstrap: []byte("x"), MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Restarts() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("restarts = %d after 10 s, want 3", s.Restarts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}

func TestRunStopsTheProcessWhenCancelled(t *testing.T) {
	// The stand-in writes its bootstrap argument's content, then waits.
	out := filepath.Join(t.TempDir(), "seen")
	s, err := New(Config{Binary: script(t, `cat "$2" > `+out+`; exec sleep 60`), Bootstrap: []byte("node: {id: x}\n"), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.PID() == 0 || !fileHas(out, "node: {id: x}") {
		if time.Now().After(deadline) {
			t.Fatal("process never started with the bootstrap")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid := s.PID()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still alive after Run returned", pid)
	}
	if s.Restarts() != 0 {
		t.Errorf("a clean stop counted %d restarts", s.Restarts())
	}
}

func fileHas(p, want string) bool {
	b, err := os.ReadFile(p)
	return err == nil && strings.Contains(string(b), want)
}
