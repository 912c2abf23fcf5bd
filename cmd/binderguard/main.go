// Command binderguard runs the binderguard control plane, launch gate and
// admission webhook, and offers offline policy tools.
//
// It wires the packages together and parses flags; only main exits: a
// subcommand must never call os.Exit or log.Fatal, it returns an error
// (usageErr for bad input, exit 2; anything else, exit 1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand; run gets the arguments after its name.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"local", "run xDS, gate and file policies with a supervised Envoy in front of a BinderHub", runLocal},
		{"serve", "in-cluster mode: CRD informers, xDS, gate, webhook, metrics", runServe},
		{"bootstrap", "print the Envoy bootstrap YAML for the sidecar", runBootstrap},
		{"policy", "offline policy tools: 'policy test', 'policy import'", runPolicy},
	}
}

// errUsage marks bad command-line input: exit code 2, message only.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: binderguard <command> [flags]\n\ncommands:")
		for _, c := range commands() {
			fmt.Fprintf(stderr, "  %-10s %s\n", c.name, c.summary)
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "binderguard %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "binderguard %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "binderguard: unknown command %q\n", args[0])
	usage()
	return 2
}

// newLogger is the structured logger every component gets a named child of.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// usageErr wraps a flag or argument problem so main exits 2.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
