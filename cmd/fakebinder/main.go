// Command fakebinder runs the BinderHub simulator of package
// test/fakebinder on a TCP address, for launch storms, demos and the
// end-to-end tests. It is a test tool: never run it as a BinderHub.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/binderguard/binderguard/test/fakebinder"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad command-line input: exit 2, message only.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErr(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func run(ctx context.Context, args []string, stderr io.Writer) int {
	err := serve(ctx, args, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "fakebinder: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "fakebinder: %v\n", err)
		return 1
	}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakebinder", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg fakebinder.Config
	listen := fs.String("listen", "127.0.0.1:8585", "address to listen on")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&cfg.BuildTime, "build-time", fakebinder.DefaultBuildTime, "duration of one simulated build")
	fs.DurationVar(&cfg.LaunchTime, "launch-time", fakebinder.DefaultLaunchTime, "duration of a launch on an idle binder pod")
	fs.DurationVar(&cfg.LaunchTimeout, "launch-timeout", fakebinder.DefaultLaunchTimeout, "launch attempt timeout (Launcher.launch_timeout)")
	fs.IntVar(&cfg.LaunchRetries, "launch-retries", fakebinder.DefaultLaunchRetries, "launch attempts (Launcher.retries)")
	fs.DurationVar(&cfg.LaunchRetryDelay, "launch-retry-delay", fakebinder.DefaultLaunchRetryDelay, "delay before the second launch attempt, doubled after each (Launcher.retry_delay)")
	fs.StringVar(&cfg.FailSpecs, "fail-specs", "", "regex searched in <provider>/<spec>: those builds fail")
	fs.StringVar(&cfg.BuiltSpecs, "built-specs", "", "regex searched in <provider>/<spec>: those images are already built")
	fs.StringVar(&cfg.BannedSpecs, "banned-specs", "", "regex matched like BinderHub's banned_specs (case-insensitive, from the start of the spec without provider)")
	fs.IntVar(&cfg.Pool, "pool", fakebinder.DefaultPool, "worker threads, as BinderHub's build_pool: a request's pod watch and its log stream take one each")
	fs.IntVar(&cfg.CPUCapacity, "cpu-capacity", 0, "build watchers served before launches slow down (default pool/2)")
	fs.DurationVar(&cfg.BurnCPU, "burn-cpu", 0, "real CPU burnt per second per pod watch and its log stream, shared by the busy workers (0: none, at most 100ms)")
	fs.DurationVar(&cfg.ReadyHold, "ready-hold", fakebinder.DefaultReadyHold, "how long a stream stays open after ready or a failed build")
	fs.DurationVar(&cfg.KeepaliveInterval, "keepalive", fakebinder.DefaultKeepaliveInterval, "interval of :keepalive comments")
	fs.StringVar(&cfg.BuildTokenSecret, "build-token-secret", "", "verify build_token query parameters with this HS256 secret")
	fs.IntVar(&cfg.RateLimit, "rate-limit", 0, "launches allowed per client address per --rate-limit-period without a valid build token, like BinderHub's RateLimiter.limit (0: off; BinderHub's default is 10)")
	fs.DurationVar(&cfg.RateLimitPeriod, "rate-limit-period", fakebinder.DefaultRateLimitPeriod, "rate limit window (RateLimiter.period_seconds)")
	fs.StringVar(&cfg.HubURL, "hub-url", fakebinder.DefaultHubURL, "prefix of the fake user-server URLs in ready events")
	fs.BoolVar(&cfg.APIOnlyMode, "api-only-mode", false, "allow ?build_only=true: build or find the image and answer ready without launching, like BinderHub's enable_api_only_mode (off: such requests get a 400 failed event)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: fakebinder [flags]\n\nA protocol-faithful BinderHub simulator for tests. Flags:")
			fs.PrintDefaults()
			return err
		}
		return usageErr("%s", firstLine(err.Error()))
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", "fakebinder")
	cfg.Logger = log
	srv, err := fakebinder.New(cfg)
	if err != nil {
		return usageErr("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "build_time", cfg.BuildTime, "pool", cfg.Pool)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
