package translate

import (
	"cmp"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	statsalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stats/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/anypack"
	"github.com/binderguard/binderguard/xds/ir"
)

// StatPrefixEdge roots the listener's HTTP stats (http.edge.*).
const StatPrefixEdge = "edge"

// streamIdleTimeout bounds a stream that sends nothing; BinderHub and the
// gate send a keepalive every 25 s, so this only reaps dead streams.
const streamIdleTimeout = 5 * time.Minute

// Limits for hostile clients, after Envoy's edge best practices; see
// test/e2e/hostile_test.go for what each one answers.
const (
	// defaultRequestHeadersTimeout closes a connection whose request
	// headers have not all arrived (slowloris); Envoy has no such bound by
	// default, so a client trickling a header line a second holds a
	// connection, and its buffers, for as long as it likes.
	defaultRequestHeadersTimeout = 10 * time.Second
	// maxConcurrentStreams caps one HTTP/2 client's streams (Envoy's
	// default is 2^31-1): a browser needs a handful, and each stream is a
	// launch held open for minutes.
	maxConcurrentStreams = 100
	// Flow-control windows and the per-connection buffer bound what one
	// client can make Envoy hold in memory.
	initialStreamWindow     = 64 << 10
	initialConnectionWindow = 1 << 20
	perConnectionBuffer     = 32 << 10
)

// edgeListener is the public listener: one HCM, routes over ADS.
func edgeListener(e *ir.Edge) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:                          ListenerName,
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(perConnectionBuffer),
		Address:                       socketAddress(e.Listener.Address),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anypack.Must(edgeHCM(e))},
			}},
		}},
	}
}

func edgeHCM(e *ir.Edge) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: StatPrefixEdge,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: RouteName,
			ConfigSource:    adsSource(),
		}},
		HttpFilters: append(banFilters(),
			&hcmv3.HttpFilter{Name: filterLocalRateLimit, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anypack.Must(localRateLimitFilter())}},
			&hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anypack.Must(&routerv3.Router{})}},
		),
		// The client address is the peer's, or the one the configured
		// number of trusted proxies in front put in X-Forwarded-For.
		UseRemoteAddress:  wrapperspb.Bool(true),
		XffNumTrustedHops: e.Listener.XFFNumTrustedHops,
		// BinderHub's tornado takes HTTP/1.0, and a proxy in front may
		// speak it (plain nginx does upstream by default); Envoy would
		// answer 426.
		HttpProtocolOptions: &corev3.Http1ProtocolOptions{AcceptHttp_10: true},
		// The codec is AUTO: HTTP/2 over TLS from an ingress, or h2c with
		// prior knowledge, meets these limits.
		Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
			MaxConcurrentStreams:        wrapperspb.UInt32(maxConcurrentStreams),
			InitialStreamWindowSize:     wrapperspb.UInt32(initialStreamWindow),
			InitialConnectionWindowSize: wrapperspb.UInt32(initialConnectionWindow),
		},
		RequestHeadersTimeout: durationpb.New(cmp.Or(e.Listener.RequestHeadersTimeout, defaultRequestHeadersTimeout)),
		NormalizePath:         wrapperspb.Bool(true),
		MergeSlashes:          true,
		StreamIdleTimeout:     durationpb.New(streamIdleTimeout),
		LocalReplyConfig:      localReply(e.Launch, e.CORSAllowOrigin),
		AccessLog:             []*accesslogv3.AccessLog{launchStats()},
	}
	if d := e.Listener.ConnectionIdleTimeout; d > 0 {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(d)}
	}
	return h
}

// StatLaunches is the counter of launch answers by class, route and
// response flags (Prometheus: envoy_binderguard_launches).
const StatLaunches = "launches"

// launchStats counts every /build/ answer once, tagged with its class (the
// x-binderguard-class header set by the edge routes, the local reply
// mappers or the gate), the route and Envoy's response flags.
func launchStats() *accesslogv3.AccessLog {
	cfg := &statsalv3.Config{
		StatsScope: &typev3.Scope{Prefix: "binderguard"},
		Counters: []*statsalv3.Config_Counter{{
			Stat: &statsalv3.Config_Stat{
				Name: StatLaunches,
				Tags: []*statsalv3.Config_Tag{
					{Name: "class", ValueFormat: "%RESP(" + HeaderClass + ")%"},
					{Name: "route", ValueFormat: "%ROUTE_NAME%"},
					{Name: "upstream_host", ValueFormat: "%UPSTREAM_HOST%"},
					{Name: "flags", ValueFormat: "%RESPONSE_FLAGS%"},
				},
			},
			ValueFixed: wrapperspb.UInt64(1),
		}},
	}
	return &accesslogv3.AccessLog{
		Name:       "envoy.access_loggers.stats",
		Filter:     launchPathFilter(),
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: anypack.Must(cfg)},
	}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func socketAddress(e ir.Endpoint) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       e.Host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
	}}}
}
