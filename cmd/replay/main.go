// Command replay replays the 2018-07-30 incident straight at the BinderHub
// simulator and through Envoy + binderguard, each next to a no-storm
// baseline, and through binderguard with stale while building, and writes test/bench/REPLAY.md with its charts (see package
// test/replay). `make replay` runs it at full size.
//
// It starts its own simulator and binderguard on free loopback ports: it
// never touches a BinderHub it did not start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/binderguard/binderguard/test/replay"
	"github.com/binderguard/binderguard/xds/envoyproc"
)

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := replayCmd(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "replay: %s (see replay -h)\n", strings.TrimSuffix(err.Error(), ": "+errUsage.Error()))
		return 2
	default:
		fmt.Fprintf(stderr, "replay: %v\n", err)
		return 1
	}
}

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	scenario := fs.String("scenario", "full", "full (1,000 launches, 60 s build) or scaled (100 launches, 5 s build)")
	bin := fs.String("bin", "bin", "directory holding fakebinder and binderguard (make build)")
	out := fs.String("out", filepath.Join("test", "bench"), "directory to write REPLAY.md and its PNG charts to")
	note := fs.String("note", "", "sentence added to the report's description of the machine")
	command := fs.String("command", "", "command line quoted in the report as the one that reproduces it (default: this one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: replay [flags]\n\nReplays the 2018-07-30 incident and writes REPLAY.md. Flags:")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	var sc replay.Scenario
	switch *scenario {
	case "full":
		sc = replay.Full()
	case "scaled":
		sc = replay.Scaled()
	default:
		return fmt.Errorf("--scenario %q: want full or scaled: %w", *scenario, errUsage)
	}
	envoy, err := envoyproc.Find()
	if err != nil {
		return err
	}
	if *command == "" {
		*command = strings.Join(append([]string{"go run ./cmd/replay"}, args...), " ")
	}
	rep, err := replay.Run(ctx, replay.Config{
		Scenario: sc, Bin: *bin, Envoy: envoy, Out: *out, Command: *command, Note: *note,
		Progress: func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) },
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, replay.ReportFile))
	for _, set := range []struct {
		name    string
		targets []replay.Target
	}{{"storm", rep.Targets}, {"storm, stale while building", rep.StaleTargets}} {
		fmt.Fprintf(stdout, "%s:\n", set.name)
		for _, t := range set.targets {
			fmt.Fprintf(stdout, "%s %s: %s (no storm %s; want %s)\n", map[bool]string{true: "✔", false: "✘"}[t.Met], t.What, t.Got, t.Baseline, t.Want)
		}
	}
	st := rep.Figures[len(rep.Figures)-1]
	fmt.Fprintf(stdout, "stale while building: %d of %d launches ready with the last good commit, %d with the new one; p50/p99 time to ready %.1f/%.1f s (without it %.1f/%.1f s)\n",
		st.StormReadyStale, st.StormClients, st.StormReadyNew, st.StormP50, st.StormP99, rep.Figures[3].StormP50, rep.Figures[3].StormP99)
	return nil
}
