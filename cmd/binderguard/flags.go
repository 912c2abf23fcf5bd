package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags parses a subcommand's flags quietly: a bad flag or a stray
// argument is a one-line usage error (exit 2), and -h prints the usage to
// stdout and returns flag.ErrHelp (exit 0). A nil usage prints the flags'
// defaults.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, usage func(io.Writer)) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if usage == nil {
				fs.SetOutput(stdout)
				fs.PrintDefaults()
			} else {
				usage(stdout)
			}
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments: %v", fs.Args())
	}
	return nil
}

// printPolicyUsage is the -h text of the policy subcommands.
func printPolicyUsage(w io.Writer) { fmt.Fprint(w, policyUsage) }
