package translate

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/anypack"
	"github.com/binderguard/binderguard/xds/ir"
)

// connectTimeout is short: both upstreams are on the local network, and a
// slow connect to the gate should fall back rather than wait.
const connectTimeout = 2 * time.Second

// gateMaxConcurrentStreams lets one h2c connection to the gate carry many
// held launches: a held stream costs the gate an HTTP/2 stream, not a
// connection.
const gateMaxConcurrentStreams = 10000

// binderCluster is BinderHub itself, over HTTP/1.1 as it expects.
func binderCluster(u ir.Upstream) *clusterv3.Cluster {
	c := baseCluster(ClusterBinder, []ir.Endpoint{u.Endpoint})
	c.CircuitBreakers = circuitBreakers(u.Breakers)
	if u.TLS {
		c.TransportSocket = &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anypack.Must(&tlsv3.UpstreamTlsContext{
				Sni: u.Endpoint.Host,
			})},
		}
	}
	return c
}

// gateCluster is the launch gate: h2c, ring hash so one replica owns a
// spec, actively health-checked so the aggregate can fall back. Discovered
// gates come over EDS (gateEndpoints).
func gateCluster(g ir.Gate) *clusterv3.Cluster {
	c := baseCluster(ClusterGate, g.Endpoints)
	if g.Discovered {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
		c.LoadAssignment = nil
		// A terminating replica still passes its health check (it serves
		// until its preStop ends): Envoy would keep it until it fails one.
		// Removed from EDS means removed now.
		c.IgnoreHealthOnHostRemoval = true
	}
	c.LbPolicy = clusterv3.Cluster_RING_HASH
	c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(1024),
	}}
	// With every gate host down the aggregate must move traffic to binder,
	// not spray it over dead gate hosts in panic mode.
	c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
	c.CircuitBreakers = circuitBreakers(g.Breakers)
	c.HealthChecks = []*corev3.HealthCheck{gateHealthCheck(g)}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anypack.Must(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
							MaxConcurrentStreams: wrapperspb.UInt32(gateMaxConcurrentStreams),
						},
					},
				},
			},
		}),
	}
	return c
}

// gateEndpoints is the EDS resource of discovered gates (nil otherwise).
// An empty assignment is still sent: it is how the last gate leaves.
func gateEndpoints(g ir.Gate) *endpointv3.ClusterLoadAssignment {
	if !g.Discovered {
		return nil
	}
	return baseCluster(ClusterGate, g.Endpoints).GetLoadAssignment()
}

// launchCluster is the aggregate the launch route uses: gate first, binder
// when no gate host is healthy.
func launchCluster(g ir.Gate) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:           ClusterLaunch,
		ConnectTimeout: durationpb.New(connectTimeout),
		LbPolicy:       clusterv3.Cluster_CLUSTER_PROVIDED,
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name:        "envoy.clusters.aggregate",
			TypedConfig: anypack.Must(&aggregatev3.ClusterConfig{Clusters: []string{ClusterGate, ClusterBinder}}),
		}},
		CircuitBreakers: circuitBreakers(g.Breakers),
	}
}

// baseCluster has static endpoints when every host is an IP, DNS otherwise.
func baseCluster(name string, eps []ir.Endpoint) *clusterv3.Cluster {
	kind, lbs := clusterv3.Cluster_STATIC, make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, e := range eps {
		if _, err := netip.ParseAddr(e.Host); err != nil {
			kind = clusterv3.Cluster_STRICT_DNS
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: socketAddress(e)},
		}})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
		},
	}
}

// circuitBreakers sets the default-priority thresholds; zero keeps Envoy's
// default. Remaining capacity is tracked so dashboards can see headroom.
func circuitBreakers(b ir.Breakers) *clusterv3.CircuitBreakers {
	t := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT, TrackRemaining: true}
	if b.MaxConnections > 0 {
		t.MaxConnections = wrapperspb.UInt32(b.MaxConnections)
	}
	if b.MaxPendingRequests > 0 {
		t.MaxPendingRequests = wrapperspb.UInt32(b.MaxPendingRequests)
	}
	if b.MaxRequests > 0 {
		t.MaxRequests = wrapperspb.UInt32(b.MaxRequests)
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}
