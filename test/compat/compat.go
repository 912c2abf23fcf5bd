// Package compat runs the official BinderHub JS client
// (@jupyterhub/binderhub-client, pinned in package.json) from Go tests, so
// tests can show what a real browser client does with what binderguard
// sends: whether it reaches ready, whether it stops or retries on a
// rejection, and what message its user would see.
//
// It shells out to `node launch.mjs` in this directory; `make tools`
// installs the Node packages (npm ci). It only drives the client: it must
// never change the client's behaviour beyond the browser globals Node lacks.
package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Defaults for Config.
const (
	// DefaultTimeout is how long the client may run when neither
	// Config.Timeout nor a context deadline says otherwise.
	DefaultTimeout = 60 * time.Second
	// DefaultLinger is waited after the client's end before counting its
	// requests: longer than the client's 1 s retry interval, so a retry
	// would show.
	DefaultLinger = 1500 * time.Millisecond
	// exitMargin leaves node time to print its result before a context
	// deadline kills it.
	exitMargin = time.Second
)

// ClientPackage is the npm package launch.mjs drives.
const ClientPackage = "@jupyterhub/binderhub-client"

// Config says what to launch.
type Config struct {
	// BaseURL is the BinderHub base URL (the client requests
	// BaseURL/build/Spec).
	BaseURL string
	// Spec is "<provider>/<spec>", e.g. "gh/org/repo/HEAD".
	Spec string
	// BuildToken and APIToken are passed to the client's constructor.
	BuildToken, APIToken string
	// Timeout bounds the launch; when it passes the harness closes the
	// client (Result.ClosedBy "timeout"). Zero: the context's deadline
	// less a margin, else DefaultTimeout.
	Timeout time.Duration
	// Linger is waited after the end before counting requests; zero means
	// DefaultLinger, negative means none.
	Linger time.Duration
}

// Event is one object the client yielded.
type Event struct {
	// TMs is the time since the client started, in milliseconds.
	TMs int64 `json:"t_ms"`
	// Data is the yielded object as JSON.
	Data json.RawMessage `json:"data"`
	// Phase, Message and StatusCode are read from Data.
	Phase      string `json:"-"`
	Message    string `json:"-"`
	StatusCode int    `json:"-"`
}

// Result is what the client did.
type Result struct {
	Events []Event `json:"-"`
	// Phases are the distinct phases yielded, in order.
	Phases []string `json:"phases"`
	// FinalPhase is the phase of the last yielded object.
	FinalPhase string `json:"final_phase"`
	// StatusCode is the status_code of the first failed event (0 if none).
	StatusCode int `json:"status_code"`
	// Message is the first failed event's message (what the user sees),
	// else the last event's.
	Message string `json:"message"`
	// Token and URL are the ready event's.
	Token string `json:"token"`
	URL   string `json:"url"`
	// RequestsMade counts the HTTP requests the client made; Statuses are
	// the HTTP statuses it got.
	RequestsMade int   `json:"requests_made"`
	Statuses     []int `json:"statuses"`
	// Closed is false only when the harness gave up (ClosedBy "timeout").
	Closed bool `json:"closed"`
	// ClosedBy is "client" (the library ended its stream itself), "ui"
	// (closed after ready, as BinderHub's UI does) or "timeout".
	ClosedBy string `json:"closed_by"`
	// Rejections are unhandled promise rejections the library left (a
	// browser would log them).
	Rejections []string `json:"rejections"`
	// Error is set when iterating the client's events threw.
	Error string `json:"error"`
	// Stderr is what node wrote on stderr (the library's console logs).
	Stderr string `json:"-"`
}

// Launch runs the official client once against baseURL for providerSpec,
// with the defaults of Config.
func Launch(ctx context.Context, baseURL, providerSpec string) (Result, error) {
	return Run(ctx, Config{BaseURL: baseURL, Spec: providerSpec})
}

// Run runs the official client once as o says.
func Run(ctx context.Context, o Config) (Result, error) {
	if o.BaseURL == "" || o.Spec == "" {
		return Result{}, errors.New("compat: BaseURL and Spec are required")
	}
	dir, err := Dir()
	if err != nil {
		return Result{}, err
	}
	node, err := Check(dir)
	if err != nil {
		return Result{}, err
	}
	linger := o.Linger
	switch {
	case linger == 0:
		linger = DefaultLinger
	case linger < 0:
		linger = 0
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(dl)-linger-exitMargin, 100*time.Millisecond)
		}
	}
	args := []string{filepath.Join(dir, "launch.mjs"), o.BaseURL, o.Spec,
		"--timeout-ms", strconv.FormatInt(timeout.Milliseconds(), 10),
		"--linger-ms", strconv.FormatInt(linger.Milliseconds(), 10)}
	if o.BuildToken != "" {
		args = append(args, "--build-token", o.BuildToken)
	}
	if o.APIToken != "" {
		args = append(args, "--api-token", o.APIToken)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	res, parseErr := parse(stdout.Bytes())
	res.Stderr = stderr.String()
	if runErr != nil {
		return res, fmt.Errorf("compat: running node launch.mjs %s %s: %w\n%s", o.BaseURL, o.Spec, runErr, tail(stderr.String()))
	}
	if parseErr != nil {
		return res, fmt.Errorf("compat: reading launch.mjs output: %w\n%s", parseErr, tail(stderr.String()))
	}
	return res, nil
}

// parse reads launch.mjs's JSON lines: events, then one result.
func parse(out []byte) (Result, error) {
	var res Result
	var events []Event
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return res, fmt.Errorf("line %q is not JSON: %w", line, err)
		}
		switch kind.Kind {
		case "event":
			var e Event
			if err := json.Unmarshal(line, &e); err != nil {
				return res, fmt.Errorf("decoding event %q: %w", line, err)
			}
			var d struct {
				Phase      string `json:"phase"`
				Message    string `json:"message"`
				StatusCode int    `json:"status_code"`
			}
			_ = json.Unmarshal(e.Data, &d) // a non-object event keeps zero fields
			e.Phase, e.Message, e.StatusCode = d.Phase, d.Message, d.StatusCode
			events = append(events, e)
		case "result":
			if err := json.Unmarshal(line, &res); err != nil {
				return res, fmt.Errorf("decoding result %q: %w", line, err)
			}
			found = true
		default:
			return res, fmt.Errorf("line %q has unknown kind %q", line, kind.Kind)
		}
	}
	res.Events = events
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("reading the client's output: %w", err)
	}
	if !found {
		return res, errors.New("no result line (node ended early)")
	}
	return res, nil
}

// Dir returns the directory holding launch.mjs and package.json: next to
// this source file, else found by walking up from the working directory
// to the module root.
func Dir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Dir(file)
		if exists(filepath.Join(d, "launch.mjs")) {
			return d, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("compat: finding launch.mjs: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if c := filepath.Join(d, "test", "compat"); exists(filepath.Join(c, "launch.mjs")) {
			return c, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("compat: launch.mjs not found next to %s or under a parent's test/compat", wd)
		}
	}
}

// Check returns the node binary, or an error saying what to install.
func Check(dir string) (node string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("compat: node not found on PATH: install Node 20, then run make tools: %w", err)
	}
	pkg := filepath.Join(dir, "node_modules", filepath.FromSlash(ClientPackage), "package.json")
	if !exists(pkg) {
		return "", fmt.Errorf("compat: %s is not installed in %s: run make tools (npm ci in test/compat)", ClientPackage, filepath.Join(dir, "node_modules"))
	}
	return node, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tail keeps the last lines of s for error messages.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}
