package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapOutput runs `binderguard bootstrap --output` as the init
// container does (no shell to redirect stdout).
func TestBootstrapOutput(t *testing.T) {
	args := []string{"bootstrap", "--node-id", "edge-7", "--xds", "127.0.0.1:18000", "--stats", "0.0.0.0:9902"}
	_, printed, _ := runCLI(t, args...)

	t.Run("the file holds what stdout would, world-readable, with no temporary file left", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "envoy.yaml")
		if err := os.WriteFile(out, []byte("an older bootstrap"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, append(args, "--output="+out)...)
		if code != 0 || stdout != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and nothing printed", code, stdout, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != printed || !strings.Contains(printed, "id: edge-7") {
			t.Errorf("the file holds\n%s\nwant what bootstrap prints:\n%s", b, printed)
		}
		// Envoy runs as another user than the init container.
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("mode %v (%v), want 0644", st.Mode(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("the directory holds %d entries, want only envoy.yaml", len(entries))
		}
	})

	tests := map[string]struct {
		output func(dir string) string
		want   string
	}{
		"a missing directory is named": {
			output: func(dir string) string { return filepath.Join(dir, "nope", "envoy.yaml") },
			want:   "directory " + "DIR/nope",
		},
		"a directory that is a file is named": {
			output: func(dir string) string {
				if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(dir, "file", "envoy.yaml")
			},
			want: "DIR/file is not a directory",
		},
	}
	if os.Geteuid() != 0 { // root writes into a read-only directory all the same
		tests["a read-only directory says so"] = struct {
			output func(dir string) string
			want   string
		}{
			output: func(dir string) string {
				ro := filepath.Join(dir, "ro")
				if err := os.Mkdir(ro, 0o555); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(ro, "envoy.yaml")
			},
			want: "is the directory writable?",
		}
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			code, _, stderr := runCLI(t, append(args, "--output="+tc.output(dir))...)
			if want := strings.ReplaceAll(tc.want, "DIR", dir); code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
			}
		})
	}
}
