package main

import (
	"strings"
	"testing"
)

func TestLocalAndBootstrapBadInputExitTwo(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		args []string
		want string
	}{
		"local without an upstream":                 {args: []string{"local", "--policies", dir}, want: "--upstream and --policies are required"},
		"local with a non-http upstream":            {args: []string{"local", "--upstream", "ftp://x", "--policies", dir}, want: "want an http or https URL"},
		"local with a missing policy dir":           {args: []string{"local", "--upstream", "http://x:1", "--policies", dir + "/nope"}, want: "is not a directory"},
		"local with a bad listen address":           {args: []string{"local", "--upstream", "http://x:1", "--policies", dir, "--listen", "nowhere"}, want: "--listen"},
		"local with a header-splitting CORS origin": {args: []string{"local", "--upstream", "http://x:1", "--policies", dir, "--cors-allow-origin", "*\r\nx: y"}, want: "--cors-allow-origin"},
		"local with a stray argument":               {args: []string{"local", "--upstream", "http://x:1", "--policies", dir, "extra"}, want: "unexpected arguments"},
		"bootstrap without a node id":               {args: []string{"bootstrap"}, want: "--node-id is required"},
		"bootstrap with a bad xds address":          {args: []string{"bootstrap", "--node-id", "n", "--xds", "x"}, want: "--xds"},
		"bootstrap with a port out of range":        {args: []string{"bootstrap", "--node-id", "n", "--admin", "127.0.0.1:99999"}, want: "--admin"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestBootstrapPrintsYAML(t *testing.T) {
	code, stdout, stderr := runCLI(t, "bootstrap", "--node-id", "edge-7", "--xds", "binderguard:18000", "--stats", "0.0.0.0:9902", "--delta")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"id: edge-7", "api_type: DELTA_GRPC", "address: binderguard", "/stats/prometheus", "max_active_downstream_connections"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bootstrap lacks %q:\n%s", want, stdout)
		}
	}
}
