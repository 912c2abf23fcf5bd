package bootstrap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
)

func TestBuildRequiresNodeXDSAndAdmin(t *testing.T) {
	if _, err := Build(Config{XDS: ir.Endpoint{Host: "127.0.0.1", Port: 18000}, Admin: ir.Endpoint{Host: "127.0.0.1", Port: 9901}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Build without a node id = %v, want ErrConfig", err)
	}
}

// The YAML is what a real Envoy accepts (envoy --mode validate), in both
// xDS modes, with and without the stats listener.
func TestYAMLIsAcceptedByEnvoy(t *testing.T) {
	bin, err := envoyproc.Find()
	if err != nil {
		t.Fatalf("this test needs a real Envoy: %v", err)
	}
	tests := map[string]Config{
		"state of the world with a stats listener": {NodeID: "edge-0", XDS: ir.Endpoint{Host: "127.0.0.1", Port: 18000}, Admin: ir.Endpoint{Host: "127.0.0.1", Port: 9901}, Stats: ir.Endpoint{Host: "0.0.0.0", Port: 9902}},
		"delta without a stats listener":           {NodeID: "edge-1", XDS: ir.Endpoint{Host: "binderguard.binder.svc", Port: 18000}, Admin: ir.Endpoint{Host: "127.0.0.1", Port: 9901}, Delta: true},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			y, err := YAML(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"id: " + o.NodeID, "global_downstream_max_connections", "bytes_to_release", XDSCluster} {
				if !strings.Contains(string(y), want) {
					t.Errorf("bootstrap lacks %q:\n%s", want, y)
				}
			}
			if (o.Stats.Port != 0) != strings.Contains(string(y), StatsPath) {
				t.Errorf("stats listener presence wrong for %+v", o)
			}
			path := filepath.Join(t.TempDir(), "bootstrap.yaml")
			if err := os.WriteFile(path, y, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--mode", "validate", "-c", path, "--disable-hot-restart").CombinedOutput()
			if err != nil {
				t.Fatalf("envoy rejected the bootstrap: %v\n%s\n%s", err, out, y)
			}
		})
	}
}
