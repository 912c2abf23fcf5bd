package bootstrap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/binderguard/binderguard/xds/envoyproc"
)

func TestParseAddr(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Addr
		wantErr bool
	}{
		"host and port":               {in: "10.0.0.1:18000", want: Addr{"10.0.0.1", 18000}},
		"a bare port means loopback":  {in: ":9901", want: Addr{"127.0.0.1", 9901}},
		"a name is kept":              {in: "binderguard.ns.svc:18000", want: Addr{"binderguard.ns.svc", 18000}},
		"an IPv6 address in brackets": {in: "[::1]:8080", want: Addr{"::1", 8080}},
		"no port is refused":          {in: "localhost", wantErr: true},
		"port zero is refused":        {in: "127.0.0.1:0", wantErr: true},
		"a port out of range":         {in: "127.0.0.1:70000", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseAddr(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestBuildRequiresNodeXDSAndAdmin(t *testing.T) {
	if _, err := Build(Options{XDS: Addr{"127.0.0.1", 18000}, Admin: Addr{"127.0.0.1", 9901}}); !errors.Is(err, ErrOptions) {
		t.Fatalf("Build without a node id = %v, want ErrOptions", err)
	}
}

// The YAML is what a real Envoy accepts (envoy --mode validate), in both
// xDS modes, with and without the stats listener.
func TestYAMLIsAcceptedByEnvoy(t *testing.T) {
	bin, err := envoyproc.Find()
	if err != nil {
		t.Fatalf("this test needs a real Envoy: %v", err)
	}
	tests := map[string]Options{
		"state of the world with a stats listener": {NodeID: "edge-0", XDS: Addr{"127.0.0.1", 18000}, Admin: Addr{"127.0.0.1", 9901}, Stats: Addr{"0.0.0.0", 9902}},
		"delta without a stats listener":           {NodeID: "edge-1", XDS: Addr{"binderguard.binder.svc", 18000}, Admin: Addr{"127.0.0.1", 9901}, Delta: true},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			y, err := YAML(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"id: " + o.NodeID, "global_downstream_max_connections", XDSCluster} {
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
