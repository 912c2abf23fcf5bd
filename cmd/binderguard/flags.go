package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/xds/ir"
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

// extraProvidersUsage is the help of --extra-providers (serve and local).
const extraProvidersUsage = "comma-separated provider prefixes your BinderHub adds to its built-in ones (BinderHub.repo_providers), e.g. custom,myforge: their launches are passed through, collapsed per spec as received, and banned by RepoBan patterns without a provider (default: BinderHub's built-in providers only)"

const corsAllowOriginUsage = "your BinderHub's cors_allow_origin (BinderHub.cors_allow_origin, e.g. '*' for Thebe or Juniper on other sites): the answers binderguard makes itself on /build (held launches, bans, rate limits, shedding) carry it as Access-Control-Allow-Origin, as BinderHub's do, so a page on another site can read them (default: none, as BinderHub)"

// parseCORSAllowOrigin checks --cors-allow-origin: it goes into a header.
func parseCORSAllowOrigin(s string) (string, error) {
	if err := ir.ValidHeaderValue(s); err != nil {
		return "", usageErr("--cors-allow-origin: %v", err)
	}
	return s, nil
}

// parseExtraProviders reads --extra-providers into a spec parser.
func parseExtraProviders(s string) (*spec.Parser, error) {
	var names []string
	for n := range strings.SplitSeq(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	p, err := spec.NewParser(names...)
	if err != nil {
		return nil, usageErr("--extra-providers: %v", err)
	}
	return p, nil
}

// printPolicyUsage is the -h text of the policy subcommands.
func printPolicyUsage(w io.Writer) { fmt.Fprint(w, policyUsage) }
