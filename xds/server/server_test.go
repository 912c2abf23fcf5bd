package server

import (
	"context"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

func cluster(name string, timeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(timeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
	}
}

func clusters(cs ...*clusterv3.Cluster) map[resource.Type][]types.Resource {
	var items []types.Resource
	for _, c := range cs {
		items = append(items, c)
	}
	return map[resource.Type][]types.Resource{resource.ClusterType: items}
}

// clusterVersion is a version map for the cluster type alone.
func clusterVersion(v string) map[resource.Type]string {
	return map[resource.Type]string{resource.ClusterType: v}
}

func TestSetPublishesOnlyChanges(t *testing.T) {
	tests := map[string]struct {
		second      string // the second Set's cluster version; the first is "v1"
		wantChanged bool
	}{
		"the same version again pushes nothing": {second: "v1"},
		"a new version pushes":                  {second: "v2", wantChanged: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, Config{})
			if changed, err := s.Set(context.Background(), clusters(cluster("a", time.Second)), clusterVersion("v1"), nil); err != nil || !changed {
				t.Fatalf("first Set = %v, %v; want a change", changed, err)
			}
			changed, err := s.Set(context.Background(), clusters(cluster("a", 2*time.Second)), clusterVersion(tc.second), nil)
			if err != nil || changed != tc.wantChanged {
				t.Fatalf("second Set = %v, %v; want %v", changed, err, tc.wantChanged)
			}
			if got := s.Version(resource.ClusterType); got != map[bool]string{false: "v1", true: tc.second}[tc.wantChanged] {
				t.Errorf("published version %q", got)
			}
		})
	}
}

// One real loop: an ADS client on a real socket subscribes, gets the
// snapshot, ACKs it, then NACKs the next one; the server counts both.
func TestADSStreamAcksAndNacks(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := mustNew(t, Config{Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Set(ctx, clusters(cluster("a", time.Second)), clusterVersion("v1"), nil); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "test"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.VersionInfo != s.Version(resource.ClusterType) || len(resp.Resources) != 1 {
		t.Fatalf("got version %q with %d resources, want %q with 1", resp.VersionInfo, len(resp.Resources), s.Version(resource.ClusterType))
	}
	// ACK.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := s.WaitAcked(wctx, resource.ClusterType, resp.VersionInfo); err != nil {
		t.Fatal(err)
	}

	// A new version, NACKed.
	if _, err := s.Set(ctx, clusters(cluster("a", 3*time.Second)), clusterVersion("v2"), nil); err != nil {
		t.Fatal(err)
	}
	resp2, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo,
		ResponseNonce: resp2.Nonce, ErrorDetail: &status.Status{Code: 3, Message: "bad cluster"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.NACKs() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.NACKs() != 1 {
		t.Fatalf("NACKs = %d, want 1", s.NACKs())
	}
	if got := counterValue(t, reg, "binderguard_xds_nacks_total"); got != 1 {
		t.Errorf("nack metric = %v, want 1", got)
	}
	if s.Acked(resource.ClusterType) != resp.VersionInfo {
		t.Errorf("a NACK moved the acked version")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func mustNew(t *testing.T, o Config) *Server {
	t.Helper()
	return New(o)
}

// TestServeReportsAListenerFailure: a listener that fails ends Serve with
// the error while ctx is still live, so the caller learns of it instead of
// waiting for shutdown.
func TestServeReportsAListenerFailure(t *testing.T) {
	s := mustNew(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis.Close() // Accept fails at once
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve on a closed listener returned nil, want the accept error")
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("Serve on a closed listener did not return while its context was live")
	}
}
