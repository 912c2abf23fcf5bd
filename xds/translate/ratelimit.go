package translate

import (
	"math"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/ir"
)

const (
	filterLocalRateLimit = "envoy.filters.http.local_ratelimit"
	// StatPrefixClientRate roots the launch rate-limit stats:
	// launch_client_ip.http_local_rate_limit.{enabled,ok,rate_limited,enforced}.
	StatPrefixClientRate = "launch_client_ip"
	// maxClientBuckets bounds the per-address buckets Envoy keeps (LRU).
	maxClientBuckets = 20000
)

// localRateLimitFilter is the HCM filter. Without a per-route config it does
// nothing; the launch route carries the per-client-IP config.
func localRateLimitFilter() *localrlv3.LocalRateLimit {
	return &localrlv3.LocalRateLimit{StatPrefix: StatPrefixClientRate}
}

// clientRateLimit is the launch route's per-client-IP token bucket: one
// dynamic descriptor keyed on the (trusted) remote address, so every client
// address gets its own bucket. Nil when the policy sets no rate.
func clientRateLimit(l ir.Launch) *localrlv3.LocalRateLimit {
	if l.ClientRate.PerSecond <= 0 {
		return nil
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
		Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED,
	}}
	return &localrlv3.LocalRateLimit{
		StatPrefix: StatPrefixClientRate,
		// The default bucket is required but must never limit: only the
		// per-address descriptor should.
		TokenBucket:                     bucket(math.MaxUint32/2, 1e9),
		AlwaysConsumeDefaultTokenBucket: wrapperspb.Bool(false),
		FilterEnabled:                   all,
		FilterEnforced:                  all,
		Descriptors: []*ratelimitv3.LocalRateLimitDescriptor{{
			Entries:     []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "remote_address"}},
			TokenBucket: bucket(l.ClientRate.Burst, l.ClientRate.PerSecond),
		}},
		RateLimits: []*routev3.RateLimit{{
			Actions: []*routev3.RateLimit_Action{{
				ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}},
			}},
		}},
		MaxDynamicDescriptors:  wrapperspb.UInt32(maxClientBuckets),
		EnableRetryAfterHeader: true,
	}
}

// bucket turns a rate per second and a burst into Envoy's token bucket:
// whole tokens per fill, fill interval at least 50 ms (Envoy's minimum).
func bucket(burst uint32, perSecond float64) *typev3.TokenBucket {
	burst = max(burst, 1)
	tokens, interval := uint32(1), time.Duration(float64(time.Second)/perSecond)
	if interval < time.Second {
		tokens, interval = uint32(math.Round(perSecond)), time.Second
	}
	return &typev3.TokenBucket{
		MaxTokens:     burst,
		TokensPerFill: wrapperspb.UInt32(max(tokens, 1)),
		FillInterval:  durationpb.New(max(interval, 50*time.Millisecond)),
	}
}
