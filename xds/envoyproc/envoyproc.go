// Package envoyproc supervises a real Envoy process: finds the binary,
// writes its bootstrap, starts it, restarts it with backoff when it dies,
// and stops it cleanly when its context ends.
//
// It must never configure Envoy beyond the bootstrap it is given (all
// other config comes over xDS), and never leave an Envoy running after Run
// returns.
package envoyproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotFound is returned when no Envoy binary can be found.
var ErrNotFound = errors.New("envoy binary not found")

// toolsPath is where `make tools` installs Envoy, relative to the repo root.
const toolsPath = ".tools/venv/bin/envoy"

// Find locates Envoy: $ENVOY_BIN, then envoy on $PATH, then
// .tools/venv/bin/envoy in the working directory or any parent, then next
// to the running executable or any parent (bin/binderguard in the repo).
func Find() (string, error) {
	var looked []string
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		looked = append(looked, "ENVOY_BIN="+p+" (not an executable file)")
	} else {
		looked = append(looked, "ENVOY_BIN (unset)")
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	looked = append(looked, "envoy on PATH")
	var starts []string
	if dir, err := os.Getwd(); err == nil {
		starts = append(starts, dir)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe)) // bin/binderguard in the repo
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, toolsPath)
			if isExecutable(p) {
				return p, nil
			}
			looked = append(looked, p)
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%w: looked at %s; set ENVOY_BIN to an Envoy 1.40 binary, put envoy on PATH, or run `make tools` in the repository",
		ErrNotFound, strings.Join(looked, ", "))
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Config describes the Envoy to run.
type Config struct {
	// Binary is the Envoy executable; empty means Find().
	Binary string
	// Bootstrap is the bootstrap YAML.
	Bootstrap []byte
	// Output receives Envoy's stdout and stderr; nil discards them.
	Output io.Writer
	// LogLevel is Envoy's --log-level; "warn" when empty.
	LogLevel string
	// Args are extra command-line arguments (e.g. "--concurrency", "2").
	Args   []string
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between restarts.
	MinBackoff, MaxBackoff time.Duration
	// StopTimeout is how long Envoy gets to exit after SIGTERM.
	StopTimeout time.Duration
}

// Supervisor runs one Envoy at a time.
type Supervisor struct {
	cfg Config

	mu       sync.Mutex
	pid      int
	restarts int
}

// New checks cfg and returns a Supervisor; it fails at once, naming what
// is missing, when Envoy cannot be found.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Binary == "" {
		p, err := Find()
		if err != nil {
			return nil, err
		}
		cfg.Binary = p
	} else if !isExecutable(cfg.Binary) {
		return nil, fmt.Errorf("%w: %s is not an executable file", ErrNotFound, cfg.Binary)
	}
	if len(cfg.Bootstrap) == 0 {
		return nil, errors.New("envoy bootstrap is empty")
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	return &Supervisor{cfg: cfg}, nil
}

// Binary is the Envoy executable in use.
func (s *Supervisor) Binary() string { return s.cfg.Binary }

// PID is the running Envoy's process id, 0 when none runs.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Restarts counts how often Envoy was restarted after dying.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// stableAfter is how long Envoy must run before the backoff resets.
const stableAfter = 30 * time.Second

// Run keeps Envoy running until ctx ends, then stops it and returns nil.
// It returns an error only when the bootstrap cannot be written.
func (s *Supervisor) Run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "binderguard-envoy-")
	if err != nil {
		return fmt.Errorf("making envoy work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(path, s.cfg.Bootstrap, 0o600); err != nil {
		return fmt.Errorf("writing envoy bootstrap: %w", err)
	}
	log := s.cfg.Logger
	backoff := s.cfg.MinBackoff
	for {
		started := time.Now()
		err := s.runOnce(ctx, path)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > stableAfter {
			backoff = s.cfg.MinBackoff
		}
		log.Error("envoy exited; restarting", "err", err, "ran", time.Since(started).Round(time.Millisecond), "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

// runOnce starts Envoy and waits for it to exit or for ctx to end.
func (s *Supervisor) runOnce(ctx context.Context, bootstrap string) error {
	args := append([]string{
		"-c", bootstrap,
		"--log-level", s.cfg.LogLevel,
		// Several Envoys may share a machine (tests, demos): no shared
		// memory for hot restart, which the supervisor does not use.
		"--disable-hot-restart",
		"--drain-time-s", "1",
	}, s.cfg.Args...)
	cmd := exec.Command(s.cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = s.cfg.Output, s.cfg.Output
	// Own process group, so a terminal's Ctrl-C reaches us and we stop
	// Envoy in order; killed with us if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.cfg.Binary, err)
	}
	s.mu.Lock()
	s.pid = cmd.Process.Pid
	s.mu.Unlock()
	s.cfg.Logger.Info("envoy started", "pid", cmd.Process.Pid, "binary", s.cfg.Binary)
	defer func() {
		s.mu.Lock()
		s.pid = 0
		s.mu.Unlock()
	}()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return fmt.Errorf("envoy (pid %d) exited: %w", cmd.Process.Pid, err)
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(s.cfg.StopTimeout):
		s.cfg.Logger.Warn("envoy did not stop in time; killing", "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-done
	}
	s.cfg.Logger.Info("envoy stopped", "pid", cmd.Process.Pid)
	return nil
}
