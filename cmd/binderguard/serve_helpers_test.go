package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/client-go/rest"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/freeport"
	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/translate"
)

// testOutput is t.Output() until the test has ended, then nothing:
// controller-runtime's global logger and stray component goroutines may
// still write after it, which t.Output() does not allow.
func testOutput(t *testing.T) io.Writer {
	w := &guardedWriter{w: t.Output()}
	t.Cleanup(w.close) // registered first, so it runs last
	return w
}

type guardedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *guardedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// counter reads one series of a counter from reg.
func counter(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// freeAddr returns a loopback address with a port free right now, for
// listeners that binderguard does not bind itself (Envoy's).
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startEnvoy runs a real Envoy bootstrapped against xdsAddr until ctx
// ends, with a stats listener on statsAddr unless it is empty; the
// returned channel closes when it has stopped.
func startEnvoy(t *testing.T, ctx context.Context, out io.Writer, xdsAddr, adminAddr, statsAddr string) <-chan struct{} {
	t.Helper()
	xa, err := ir.ParseEndpoint(xdsAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	aa, err := ir.ParseEndpoint(adminAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var sa ir.Endpoint
	if statsAddr != "" {
		if sa, err = ir.ParseEndpoint(statsAddr, ""); err != nil {
			t.Fatal(err)
		}
	}
	boot, err := bootstrap.YAML(bootstrap.Config{NodeID: "serve-test", Cluster: "binderguard", XDS: xa, Admin: aa, Stats: sa})
	if err != nil {
		t.Fatal(err)
	}
	sup, err := envoyproc.New(envoyproc.Config{Bootstrap: boot, Output: out, Args: []string{"--concurrency", "1"}})
	if err != nil {
		t.Fatalf("this test runs a real Envoy (ENVOY_BIN, PATH or .tools/venv/bin/envoy; make tools): %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sup.Run(ctx); err != nil {
			t.Errorf("envoy: %v", err)
		}
	}()
	return done
}

// launch follows one launch stream to its last phase.
func launch(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream") // as BinderHub requires
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("launch %s: %v", url, err)
	}
	defer resp.Body.Close()
	r := sse.NewReader(resp.Body)
	last := ""
	for {
		ev, err := r.Next()
		if err != nil {
			return last
		}
		if ev.IsComment() {
			continue
		}
		last = ev.Phase
		if last == sse.PhaseReady || last == "failed" {
			return last
		}
	}
}

// assertEdgeBan asks the xDS server for the edge route configuration over
// ADS until it carries a rule for prefix, ACKing each version.
func assertEdgeBan(t *testing.T, ctx context.Context, addr, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening an ADS stream: %v", err)
	}
	// Bans are in the ECDS ban slots (translate.BanSlots).
	var slots []string
	for i := range translate.BanSlots {
		slots = append(slots, translate.BanSlotName(i))
	}
	req := &discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: "serve-test", Cluster: "binderguard"},
		TypeUrl:       resource.ExtensionConfigType,
		ResourceNames: slots,
	}
	for {
		if err := stream.Send(req); err != nil {
			t.Fatalf("sending an ECDS request: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("no ban slot carrying %s over ADS: %v", prefix, err)
		}
		for _, r := range resp.Resources {
			js, err := protojson.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(js, []byte(prefix)) {
				return
			}
		}
		req.VersionInfo, req.ResponseNonce = resp.VersionInfo, resp.Nonce
	}
}

// startServe runs s until stop, which the test's cleanup also calls: stop
// ends s's context and waits up to 30 s for it to return.
func startServe(t *testing.T, s *inCluster) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("serve did not stop within 30 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return ctx, stop
}

// startServeWith parses args as serve's flags (environment from getenv), builds
// serve against the API server rc reaches and runs it until the test ends.
func startServeWith(t *testing.T, rc *rest.Config, args []string, getenv func(string) string, log *slog.Logger) (*inCluster, context.Context) {
	t.Helper()
	c, err := parseServe(args, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newInCluster(rc, c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := startServe(t, s)
	return s, ctx
}
