// Command launchstorm replays the 2018-07-30 BinderHub incident: it opens
// many concurrent launches of one repository the way the official JS
// client does and prints one JSON summary (see package
// test/launchstorm).
//
// It is a load generator: never point it at a BinderHub you do not run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/binderguard/binderguard/test/launchstorm"
)

// progressInterval is how often the terminal progress line is redrawn.
const progressInterval = 250 * time.Millisecond

// errUsage marks bad command-line input: exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The live line goes to stderr, so it is shown when stderr is a
	// terminal, also with the JSON summary redirected to a file.
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// headerFlags collects repeated --header "Name: value" flags.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) int {
	err := storm(ctx, args, stdout, stderr, terminal)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "launchstorm: %s (see launchstorm -h)\n", strings.TrimSuffix(err.Error(), ": "+errUsage.Error()))
		return 2
	default:
		fmt.Fprintf(stderr, "launchstorm: %v\n", err)
		return 1
	}
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errUsage)...)
}

func storm(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) error {
	fs := flag.NewFlagSet("launchstorm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		o        launchstorm.Config
		mixFile  string
		jsonOnly bool
		headers  = headerFlags{}
	)
	fs.StringVar(&o.URL, "url", "", "base URL of BinderHub or of the proxy in front of it (required)")
	fs.StringVar(&o.Spec, "spec", "", "provider/spec to launch, e.g. gh/org/repo/HEAD (required)")
	fs.IntVar(&o.Clients, "clients", 1, "number of concurrent launches")
	fs.DurationVar(&o.Ramp, "ramp", 0, "spread the starts evenly over this duration")
	fs.DurationVar(&o.Timeout, "timeout", launchstorm.DefaultTimeout, "per-launch timeout")
	fs.StringVar(&mixFile, "mix", "", "YAML or JSON list of {spec, clients, interval|ramp, delay}: background launches")
	fs.BoolVar(&o.Retry, "retry", false, "retry every second on HTTP 429/5xx, as the JS client's source intends (the pinned 0.5.0 does not)")
	fs.BoolVar(&jsonOnly, "json", false, "print only the JSON summary, no live progress")
	fs.StringVar(&o.StatsURL, "stats-url", "", "fetch this URL (the simulator's /_sim/stats) at the end and include it")
	fs.Var(headers, "header", "extra request header \"Name: value\" (repeatable)")
	fs.Usage = func() {} // errors are one line; -h prints the flags below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: launchstorm --url URL --spec SPEC --clients N [flags]")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if o.URL == "" || o.Spec == "" {
		return usageErr("--url and --spec are required")
	}
	if o.Clients < 1 {
		return usageErr("--clients must be at least 1, got %d", o.Clients)
	}
	if o.Ramp < 0 || o.Timeout <= 0 {
		return usageErr("--ramp must not be negative and --timeout must be positive")
	}
	if err := launchstorm.CheckSpec(o.Spec); err != nil {
		return usageErr("%v", err)
	}
	if mixFile != "" {
		mix, err := launchstorm.LoadMix(mixFile)
		if err != nil {
			return usageErr("%v", err)
		}
		o.Mix = mix
	}
	if len(headers) > 0 {
		h := http.Header(headers)
		o.Headers = func(int) http.Header { return h }
	}

	var stopProgress func()
	if terminal && !jsonOnly {
		o.Tracker = launchstorm.NewTracker()
		stopProgress = showProgress(ctx, o.Tracker, o.StatsURL, stderr)
	}
	s, err := launchstorm.Run(ctx, o)
	if stopProgress != nil {
		stopProgress()
	}
	if err != nil {
		if errors.Is(err, launchstorm.ErrUnreachable) {
			return err
		}
		return usageErr("%v", err)
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding summary: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// showProgress redraws the counts by phase on w, and the simulator's
// build watchers read from statsURL every second when one is given, until
// the returned stop function is called; stop draws the final line and
// waits for the drawer and the poller.
func showProgress(ctx context.Context, t *launchstorm.Tracker, statsURL string, w io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var watchers atomic.Int64
	watchers.Store(-1)
	draw := func() { fmt.Fprintf(w, "\r\x1b[2K%s", progressLine(t.Elapsed(), t.Snapshot(), watchers.Load())) }
	wg.Go(func() {
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				draw()
			}
		}
	})
	if statsURL != "" {
		wg.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if n, err := buildWatchers(ctx, statsURL); err == nil {
					watchers.Store(n)
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
		draw()
		fmt.Fprintln(w)
	}
}

// progressLine is the live line: counts by phase, then the simulator's
// build watchers when known (watchers < 0: not known).
func progressLine(elapsed time.Duration, counts map[string]int, watchers int64) string {
	line := launchstorm.FormatProgress(elapsed, counts)
	if watchers >= 0 {
		line += fmt.Sprintf("  | upstream build watchers %d", watchers)
	}
	return line
}

// buildWatchers reads active_build_watchers from the simulator's stats.
func buildWatchers(ctx context.Context, statsURL string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Watchers int64 `json:"active_build_watchers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("reading %s: %w", statsURL, err)
	}
	return st.Watchers, nil
}
