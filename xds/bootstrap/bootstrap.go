// Package bootstrap renders the Envoy bootstrap: node identity, the ADS
// cluster pointing at binderguard's xDS server, the admin interface, a stats
// listener that serves only /stats/prometheus and /ready,
// overload-manager limits, and the allocator's release of freed memory.
//
// Everything else (listeners, routes, clusters) comes over ADS; this
// package must never carry policy. It builds a proto, validates it, and
// renders YAML; it does no I/O.
package bootstrap

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/xds/anypack"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/translate"
)

// Names in the bootstrap.
const (
	XDSCluster    = "xds_cluster"
	adminCluster  = "envoy_admin"
	StatsListener = "stats"
	StatsPath     = "/stats/prometheus"
	// ReadyPath answers through the gate cluster (its /healthz): 200 once
	// this Envoy has a healthy gate to send launches to, 503 before. A
	// replica's startup probe, so its Envoy takes no launch it would have
	// to pass around the gates. (Not admin's /ready, which only says the
	// server is live; admin is on loopback.)
	ReadyPath = "/ready"
)

// DefaultMaxConnections caps downstream connections per Envoy. Each held SSE
// launch is a connection; beyond this Envoy stops accepting rather than
// running out of memory or file descriptors. The monitor only refuses
// connections: an overload action triggered on it never fires (Envoy
// 1.40), so launches past capacity are turned into failed events with
// Retry-After by the gate cluster's breakers and the gate, not here.
const DefaultMaxConnections = 50000

// releasePerSecond is how much freed heap Envoy hands back to the kernel
// each second. tcmalloc otherwise keeps what a config load or a storm
// freed: after loading 10,000 bans Envoy's RSS stayed about 5 MiB higher
// (BenchmarkEnvoyMemoryBans, 1.94 → 1.86 of the 10-ban RSS). A few MiB a
// second returns that within seconds and costs a storm nothing measurable.
const releasePerSecond = 8 << 20

// Config describes one Envoy.
type Config struct {
	NodeID  string
	Cluster string // node cluster; "binderguard" when empty
	XDS     ir.Endpoint
	Admin   ir.Endpoint
	// Stats, when its port is set, is a listener serving only
	// /stats/prometheus from the admin interface.
	Stats ir.Endpoint
	// Delta selects incremental xDS instead of state of the world.
	Delta          bool
	MaxConnections int64
}

// ErrConfig is returned for a Config that cannot make a bootstrap.
var ErrConfig = errors.New("bootstrap config")

// Build returns the validated bootstrap proto.
func Build(o Config) (*bootstrapv3.Bootstrap, error) {
	if o.NodeID == "" || o.XDS.Port == 0 || o.Admin.Port == 0 {
		return nil, fmt.Errorf("%w: node id, xDS address and admin address are required", ErrConfig)
	}
	if o.Cluster == "" {
		o.Cluster = "binderguard"
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	api := corev3.ApiConfigSource_GRPC
	if o.Delta {
		api = corev3.ApiConfigSource_DELTA_GRPC
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: o.Cluster},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             api,
				TransportApiVersion: corev3.ApiVersion_V3,
				// The node is sent once per stream, not with every request.
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster},
				}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{xdsCluster(o.XDS)},
		},
		Admin: &bootstrapv3.Admin{Address: socket(o.Admin)},
		MemoryAllocatorManager: &bootstrapv3.MemoryAllocatorManager{
			BytesToRelease:        releasePerSecond,
			MemoryReleaseInterval: durationpb.New(time.Second),
		},
		OverloadManager: &overloadv3.OverloadManager{
			RefreshInterval: durationpb.New(250 * time.Millisecond),
			ResourceMonitors: []*overloadv3.ResourceMonitor{{
				Name: "envoy.resource_monitors.global_downstream_max_connections",
				ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: anypack.Must(
					&downstreamv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: o.MaxConnections})},
			}},
		},
	}
	if o.Stats.Port != 0 {
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, plainCluster(adminCluster, o.Admin, false))
		b.StaticResources.Listeners = []*listenerv3.Listener{statsListener(o.Stats)}
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%w: generated bootstrap is invalid: %w", ErrConfig, err)
	}
	return b, nil
}

// YAML renders the bootstrap for Envoy's -c flag.
func YAML(o Config) ([]byte, error) {
	b, err := Build(o)
	if err != nil {
		return nil, err
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding bootstrap: %w", err)
	}
	// JSONToYAML sorts keys, so the output is stable.
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("encoding bootstrap as yaml: %w", err)
	}
	return y, nil
}

// xdsCluster reaches the control plane over gRPC (HTTP/2).
func xdsCluster(a ir.Endpoint) *clusterv3.Cluster {
	return plainCluster(XDSCluster, a, true)
}

func plainCluster(name string, a ir.Endpoint, h2 bool) *clusterv3.Cluster {
	kind := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(a.Host); err != nil {
		kind = clusterv3.Cluster_STRICT_DNS
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socket(a)}},
			}}}},
		},
	}
	if h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anypack.Must(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
						},
					},
				},
			}),
		}
	}
	return c
}

// statsListener exposes only the Prometheus endpoint of the admin
// interface, so scraping does not open the rest of admin to the network.
func statsListener(a ir.Endpoint) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "stats",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "stats",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "stats",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: StatsPath}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: adminCluster},
					}},
				}, {
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: ReadyPath}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: translate.ClusterGate},
						PrefixRewrite:    translate.DefaultHealthPath,
						Timeout:          durationpb.New(2 * time.Second),
					}},
				}},
			}},
			// The gate cluster comes later, over CDS.
			ValidateClusters: wrapperspb.Bool(false),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anypack.Must(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:    StatsListener,
		Address: socket(a),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anypack.Must(hcm)},
		}}}},
	}
}

func socket(a ir.Endpoint) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       a.Host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: a.Port},
	}}}
}
