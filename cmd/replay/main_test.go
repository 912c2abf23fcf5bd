package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBadInputIsOneLineAndExitCode2(t *testing.T) {
	tests := map[string][]string{
		"an unknown scenario":    {"--scenario", "huge"},
		"an unknown flag":        {"--clients", "5"},
		"a stray argument":       {"now"},
		"a flag without a value": {"--out"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr.String())
			}
			if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "replay: ") {
				t.Errorf("stderr %q, want one line starting with \"replay: \"", out)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// Missing binaries are named before anything starts.
func TestMissingBinariesAreNamed(t *testing.T) {
	t.Setenv("ENVOY_BIN", "/bin/true")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--scenario", "scaled", "--bin", t.TempDir(), "--out", t.TempDir()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "runs fakebinder from") {
		t.Errorf("exit %d, stderr %q; want 1 naming fakebinder", code, stderr.String())
	}
}
