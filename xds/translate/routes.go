package translate

import (
	"errors"
	"fmt"
	"time"

	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/anypack"
	"github.com/binderguard/binderguard/xds/ir"
)

// Route names; with HeaderClass they tell the launch classes apart.
const (
	RoutePassThrough = "passthrough"
	RouteLaunch      = "launch"
	routeEdgePrefix  = "edge_" // + class, for direct responses
)

// routeConfig builds the single route configuration: X-Real-Ip from the
// downstream address, and one virtual host whose matcher tree picks the route.
func routeConfig(e *ir.Edge) (*routev3.RouteConfiguration, error) {
	m, err := edgeMatcher(e)
	return &routev3.RouteConfiguration{
		Name: RouteName,
		// The gate and BinderHub take the client address from X-Real-Ip, so
		// Envoy overwrites whatever the client sent with the address it
		// trusts (the peer, or the XFF hop the listener is told to trust).
		RequestHeadersToAdd: []*corev3.HeaderValueOption{
			header("x-real-ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
		},
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    VirtualHost,
			Domains: []string{"*"},
			Matcher: m,
		}},
	}, err
}

// launchMethod is the only method of a launch: BinderHub's BuildHandler
// serves GET, and only its get counts a launch (check_rate_limit).
const launchMethod = "GET"

// edgeMatcher is the matcher described in the package doc: requests other
// than GET pass through to BinderHub, GETs go down the prefix trie on
// :path. A CORS preflight (OPTIONS) or a HEAD of a launch URL is no launch:
// it must take no token from the client's launch bucket, get no ban's
// answer and no gate's 405, but what BinderHub answers (a browser's
// preflight gets a 200 with the site's CORS headers: BuildHandler.prepare
// refuses its Accept and send_error answers on a 200).
func edgeMatcher(e *ir.Edge) (*xdsmatcher.Matcher, error) {
	tree, err := launchTree(e)
	return &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{
			Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{{
				Predicate: singlePredicate(methodInput(), &xdsmatcher.StringMatcher{
					MatchPattern: &xdsmatcher.StringMatcher_Exact{Exact: launchMethod},
				}),
				OnMatch: &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Matcher{Matcher: tree}},
			}},
		}},
		OnNoMatch: onMatchRoute(RoutePassThrough, passThroughRoute()),
	}, err
}

// launchTree is the prefix trie on :path that a GET goes down.
func launchTree(e *ir.Edge) (*xdsmatcher.Matcher, error) {
	var errs []error
	entries := map[string]*xdsmatcher.Matcher_OnMatch{
		ir.LaunchPrefix: launchOnMatch(e.Launch),
	}
	// A block's route does not contain its prefix, so blocks that answer
	// alike (every spelling of one ban, bans sharing a message) share one
	// packed route: translation of 10,000 bans stays well under 250 ms.
	type answer struct {
		class   ir.Class
		code    int
		message string
		retry   time.Duration
	}
	routes := map[answer]*xdsmatcher.Matcher_OnMatch{}
	for _, b := range e.Blocks {
		if err := b.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := entries[b.PathPrefix]; dup {
			// Bans are listed first, so the ban wins over a hot spec.
			continue
		}
		k := answer{b.Class, b.StatusCode, b.Message, b.RetryAfter}
		om, ok := routes[k]
		if !ok {
			om = onMatchRoute(routeEdgePrefix+string(b.Class), blockRoute(b))
			routes[k] = om
		}
		entries[b.PathPrefix] = om
	}
	return &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherTree_{MatcherTree: &xdsmatcher.Matcher_MatcherTree{
			Input: pathInput(),
			TreeType: &xdsmatcher.Matcher_MatcherTree_PrefixMatchMap{
				PrefixMatchMap: &xdsmatcher.Matcher_MatcherTree_MatchMap{Map: entries},
			},
		}},
		OnNoMatch: onMatchRoute(RoutePassThrough, passThroughRoute()),
	}, errors.Join(errs...)
}

func pathInput() *xdscore.TypedExtensionConfig {
	return &xdscore.TypedExtensionConfig{
		Name:        "path",
		TypedConfig: anypack.Must(&matcherv3.HttpRequestHeaderMatchInput{HeaderName: ":path"}),
	}
}

func methodInput() *xdscore.TypedExtensionConfig {
	return &xdscore.TypedExtensionConfig{
		Name:        "method",
		TypedConfig: anypack.Must(&matcherv3.HttpRequestHeaderMatchInput{HeaderName: ":method"}),
	}
}

func singlePredicate(input *xdscore.TypedExtensionConfig, m *xdsmatcher.StringMatcher) *xdsmatcher.Matcher_MatcherList_Predicate {
	return &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
			Input:   input,
			Matcher: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: m},
		},
	}}
}

// malformedPercent matches a whole :path (Envoy's safe_regex must match
// all of it) whose path part, before any query, holds a % not followed by
// two hex digits. RE2, linear time.
const malformedPercent = `[^?]*%[0-9A-Fa-f]?([^0-9A-Fa-f].*)?`

// launchOnMatch answers, at the edge, a launch whose path has malformed
// percent-encoding with a 400 failed event that says so; everything else
// under /build/ takes the launch route. The gate's HTTP server cannot
// even parse such a path: over h2c it resets the stream, which Envoy
// would report as the gate at capacity (and retry at BinderHub), and
// BinderHub would refuse the spec anyway.
func launchOnMatch(l ir.Launch) *xdsmatcher.Matcher_OnMatch {
	return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Matcher{Matcher: &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{
			Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{{
				Predicate: singlePredicate(pathInput(), &xdsmatcher.StringMatcher{
					MatchPattern: &xdsmatcher.StringMatcher_SafeRegex{SafeRegex: &xdsmatcher.RegexMatcher{
						EngineType: &xdsmatcher.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcher.RegexMatcher_GoogleRE2{}},
						Regex:      malformedPercent,
					}},
				}),
				OnMatch: onMatchRoute(routeEdgePrefix+ClassInvalid, invalidRoute()),
			}},
		}},
		OnNoMatch: onMatchRoute(RouteLaunch, launchRoute(l)),
	}}}
}

func onMatchRoute(name string, r *routev3.Route) *xdsmatcher.Matcher_OnMatch {
	return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{
		Action: &xdscore.TypedExtensionConfig{Name: name, TypedConfig: anypack.Must(r)},
	}}
}

// matchAll is the Route.match the matcher tree's routes carry; the tree has
// already decided, but the field is required.
func matchAll() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
}

// passThroughRoute sends everything that is not a launch to BinderHub
// untouched. Timeout 0: Envoy must not cut what BinderHub would have served.
func passThroughRoute() *routev3.Route {
	return &routev3.Route{
		Name:  RoutePassThrough,
		Match: matchAll(),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterBinder},
			Timeout:          durationpb.New(0),
		}},
	}
}

// launchRoute sends /build/ to the gate, falling back to BinderHub.
func launchRoute(l ir.Launch) *routev3.Route {
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterLaunch},
		// A launch is a minutes-long SSE stream: no overall timeout, an idle
		// timeout above the 25 s keepalive, a cap at the longest build.
		Timeout: durationpb.New(0),
		HashPolicy: []*routev3.RouteAction_HashPolicy{{
			PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{
				HeaderName: ":path",
				// Hash the spec, not the per-client build_token query.
				RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
					Pattern:      &matcherv3.RegexMatcher{Regex: `^([^?]*).*$`},
					Substitution: `\1`,
				},
			}},
		}},
		RetryPolicy: launchRetryPolicy(),
	}
	if l.IdleTimeout > 0 {
		action.IdleTimeout = durationpb.New(l.IdleTimeout)
	}
	if l.MaxStreamDuration > 0 {
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{
			MaxStreamDuration: durationpb.New(l.MaxStreamDuration),
		}
	}
	r := &routev3.Route{
		Name:   RouteLaunch,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: ir.LaunchPrefix}},
		Action: &routev3.Route_Route{Route: action},
	}
	if rl := clientRateLimit(l); rl != nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{filterLocalRateLimit: anypack.Must(rl)}
	}
	return r
}

// launchRetryPolicy retries only failures that happened before any byte
// reached an upstream, so a retry can never start a second launch; the
// previous_priorities plugin sends it to the next cluster of the aggregate.
func launchRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset-before-request",
		NumRetries: wrapperspb.UInt32(1),
		RetryPriority: &routev3.RetryPolicy_RetryPriority{
			Name: "envoy.retry_priorities.previous_priorities",
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: anypack.Must(
				&previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: 1})},
		},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: anypack.Must(
				&previoushosts.PreviousHostsPredicate{})},
		}},
	}
}

// header is an overwrite-or-add header option.
func header(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// retryAfter renders d as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return fmt.Sprint(max(s, 1))
}
