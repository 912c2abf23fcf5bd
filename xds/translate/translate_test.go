package translate

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/ir"
)

func baseEdge() *ir.Edge {
	return &ir.Edge{
		Listener: ir.Listener{Address: ir.Endpoint{Host: "0.0.0.0", Port: 8080}},
		Binder:   ir.Upstream{Endpoint: ir.Endpoint{Host: "127.0.0.1", Port: 8585}},
		Gate:     ir.Gate{Endpoints: []ir.Endpoint{{Host: "127.0.0.1", Port: 8081}}},
	}
}

// prefixes returns the edge matcher's map keys and the route name each
// resolves to.
func prefixes(t *testing.T, res *Resources) map[string]string {
	t.Helper()
	m := prefixMap(res.Routes[0])
	out := map[string]string{}
	for k, v := range m {
		if nested := v.GetMatcher(); nested != nil {
			// /build/: the malformed-URL check first, then the launch route.
			v = nested.GetOnNoMatch()
		}
		out[k] = v.GetAction().GetName()
	}
	// Plain bans are in the ECDS ban slots: "slot/<action>". The route a
	// launch under a ban takes must enable a slot holding the ban (an
	// owner-wide ban is also copied into the shards below it).
	holders := map[string][]string{}
	for i, x := range res.Extensions {
		if x.GetName() != BanSlotName(i) {
			t.Fatalf("extension %d is %s, not slot %d", i, x.GetName(), i)
		}
		for k, v := range shardMap(t, x) {
			out[k] = "slot/" + v.GetAction().GetName()
			holders[k] = append(holders[k], x.GetName())
		}
	}
	for k, slots := range holders {
		best := ""
		for p := range m {
			if strings.HasPrefix(k, p) && len(p) > len(best) {
				best = p
			}
		}
		if !slices.ContainsFunc(slots, func(name string) bool { return routeEnables(t, m[best], name) }) {
			t.Errorf("a launch under %s takes route %s, which enables none of %v", k, best, slots)
		}
	}
	return out
}

// routeEnables reports whether a launch taking om runs slot filter name.
func routeEnables(t *testing.T, om *xdsmatcher.Matcher_OnMatch, name string) bool {
	t.Helper()
	if nested := om.GetMatcher(); nested != nil {
		om = nested.GetOnNoMatch()
	}
	var r routev3.Route
	if err := om.GetAction().GetTypedConfig().UnmarshalTo(&r); err != nil {
		t.Fatal(err)
	}
	var fc routev3.FilterConfig
	if a := r.GetTypedPerFilterConfig()[name]; a == nil || a.UnmarshalTo(&fc) != nil || fc.GetDisabled() {
		return false
	}
	return true
}

func shardMap(t *testing.T, x *corev3.TypedExtensionConfig) map[string]*xdsmatcher.Matcher_OnMatch {
	t.Helper()
	var ewm matchingv3.ExtensionWithMatcher
	if err := x.GetTypedConfig().UnmarshalTo(&ewm); err != nil {
		t.Fatalf("%s: %v", x.GetName(), err)
	}
	return ewm.GetXdsMatcher().GetMatcherTree().GetPrefixMatchMap().GetMap()
}

func TestMalformedPercentEncodingIsAnsweredAtTheEdge(t *testing.T) {
	re := regexp.MustCompile(`^(?:` + malformedPercent + `)$`) // RE2 syntax; Envoy matches the whole path
	tests := map[string]bool{
		"/build/gh/org/repo/HEAD":                              false,
		"/build/git/https%3A%2F%2Fgithub.com%2Fo%2Fr.git/HEAD": false,
		"/build/gl/group%2Fsub%2Frepo/main":                    false,
		"/build/gh/org/repo/HEAD?build_token=a%2Bb":            false,
		"/build/gh/org/repo/HEAD?q=%zz":                        false, // the query is BinderHub's to read
		"/build/gh/%zz/x/HEAD":                                 true,
		"/build/gh/org/repo%2/HEAD":                            true,
		"/build/gh/org/repo/HEAD%":                             true,
		"/build/gh/org/repo/HEAD%4?build_token=x":              true,
		"/build/gh/org/%%41/HEAD":                              true,
		"/build/zenodo/10.5281%2Fzenodo.3242074":               false,
	}
	for path, want := range tests {
		if got := re.MatchString(path); got != want {
			t.Errorf("%s: malformed = %v, want %v", path, got, want)
		}
	}
	res, err := Translate(baseEdge())
	if err != nil {
		t.Fatal(err)
	}
	launch := prefixMap(res.Routes[0])[ir.LaunchPrefix]
	fm := launch.GetMatcher().GetMatcherList().GetMatchers()
	if len(fm) != 1 || fm[0].GetPredicate().GetSinglePredicate().GetValueMatch().GetSafeRegex().GetRegex() != malformedPercent ||
		fm[0].GetOnMatch().GetAction().GetName() != routeEdgePrefix+ClassInvalid {
		t.Errorf("/build/ does not check for malformed percent-encoding first: %v", launch)
	}
}

func TestTranslateBlocks(t *testing.T) {
	ban := ir.Block{PathPrefix: "/build/gh/a/b/", Class: ir.ClassBanned, StatusCode: 403, Message: "no"}
	hot := ir.Block{PathPrefix: "/build/gh/c/d/HEAD", Class: ir.ClassBreakerOpen, StatusCode: 503, Message: "later", RetryAfter: time.Minute}
	tests := map[string]struct {
		blocks  []ir.Block
		want    map[string]string
		wantErr error
	}{
		"no blocks leaves only the launch prefix": {
			want: map[string]string{"/build/": RouteLaunch},
		},
		"a ban goes to a slot and a hot spec to the routes": {
			blocks: []ir.Block{ban, hot},
			want:   map[string]string{"/build/": RouteLaunch, ban.PathPrefix: "slot/ban", hot.PathPrefix: "edge_breaker_open"},
		},
		"a ban wins over a hot spec on the same prefix": {
			blocks: []ir.Block{ban, {PathPrefix: ban.PathPrefix, Class: ir.ClassSaturated, StatusCode: 429, Message: "full"}},
			want:   map[string]string{"/build/": RouteLaunch, ban.PathPrefix: "slot/ban"},
		},
		"a ban with a Retry-After stays a route": {
			blocks: []ir.Block{{PathPrefix: ban.PathPrefix, Class: ir.ClassBanned, StatusCode: 403, Message: "no", RetryAfter: time.Minute}},
			want:   map[string]string{"/build/": RouteLaunch, ban.PathPrefix: "edge_banned"},
		},
		"a bad block is skipped and reported, the rest is kept": {
			blocks:  []ir.Block{{PathPrefix: "/versions", Class: ir.ClassBanned, StatusCode: 403, Message: "x"}, ban},
			want:    map[string]string{"/build/": RouteLaunch, ban.PathPrefix: "slot/ban"},
			wantErr: ir.ErrBadPathPrefix,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := baseEdge()
			e.Blocks = tc.blocks
			res, err := Translate(e)
			if res == nil {
				t.Fatalf("Translate returned no resources: %v", err)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Translate error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, prefixes(t, res)); diff != "" {
				t.Errorf("edge prefixes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTranslateRefusesUnusableEdge(t *testing.T) {
	e := baseEdge()
	e.Gate.Endpoints = nil
	if res, err := Translate(e); res != nil || !errors.Is(err, ErrInvalidEdge) || !errors.Is(err, ir.ErrNoUpstream) {
		t.Fatalf("Translate = %v, %v; want nil and ErrInvalidEdge wrapping ErrNoUpstream", res, err)
	}
}

func TestBlockRouteIsOneFailedEvent(t *testing.T) {
	r := blockRoute(ir.Block{PathPrefix: "/build/gh/a/b/", Class: ir.ClassSaturated, StatusCode: 429, Message: "full", RetryAfter: 1500 * time.Millisecond})
	want := &routev3.Route{
		Name:  "edge_saturated",
		Match: matchAll(),
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 200,
			Body:   inline("data: {\"phase\":\"failed\",\"message\":\"full\",\"status_code\":429}\n\n"),
		}},
		ResponseHeadersToAdd: sseHeaders("saturated", "2"),
	}
	if diff := cmp.Diff(want, r, protocmp.Transform()); diff != "" {
		t.Errorf("block route (-want +got):\n%s", diff)
	}
}

func TestBucket(t *testing.T) {
	tests := map[string]struct {
		burst     uint32
		perSecond float64
		want      *typev3.TokenBucket
	}{
		"one a second is one token per second":     {burst: 5, perSecond: 1, want: tb(5, 1, time.Second)},
		"a slow rate refills one token at a time":  {burst: 3, perSecond: 0.25, want: tb(3, 1, 4*time.Second)},
		"a fast rate refills many tokens a second": {burst: 50, perSecond: 20, want: tb(50, 20, time.Second)},
		"a zero burst still admits one launch":     {burst: 0, perSecond: 2, want: tb(1, 2, time.Second)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, bucket(tc.burst, tc.perSecond), protocmp.Transform()); diff != "" {
				t.Errorf("bucket (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLaunchRouteHasNoRateLimitWithoutPolicy(t *testing.T) {
	if r := launchRoute(ir.Launch{}); len(r.TypedPerFilterConfig) != 0 {
		t.Errorf("launch route has per-filter config %v without a client rate", r.TypedPerFilterConfig)
	}
	if r := launchRoute(ir.Launch{ClientRate: ir.RateLimit{PerSecond: 1, Burst: 2}}); r.TypedPerFilterConfig[filterLocalRateLimit] == nil {
		t.Errorf("launch route lacks the local rate limit with a client rate")
	}
}

func TestMatcherFallsThroughToBinder(t *testing.T) {
	res, err := Translate(baseEdge())
	if err != nil {
		t.Fatal(err)
	}
	// A request that is not a GET, and a GET outside the trie.
	for what, nm := range map[string]*xdsmatcher.Matcher_OnMatch{
		"not GET":           res.Routes[0].VirtualHosts[0].GetMatcher().GetOnNoMatch(),
		"GET, not /build/*": trieMatcher(res.Routes[0]).GetOnNoMatch(),
	} {
		if nm.GetAction().GetName() != RoutePassThrough {
			t.Fatalf("%s: on_no_match action %q, want %q", what, nm.GetAction().GetName(), RoutePassThrough)
		}
		var r routev3.Route
		if err := nm.GetAction().GetTypedConfig().UnmarshalTo(&r); err != nil {
			t.Fatal(err)
		}
		if r.GetRoute().GetCluster() != ClusterBinder || r.GetRoute().GetRetryPolicy() != nil {
			t.Errorf("%s: pass-through route %v, want cluster binder and no retries", what, r.GetRoute())
		}
	}
	if !strings.Contains(res.Routes[0].RequestHeadersToAdd[0].Header.Value, "DOWNSTREAM_REMOTE_ADDRESS") {
		t.Errorf("X-Real-Ip is not set from the downstream address")
	}
}

// trieMatcher is the matcher a GET goes to: the prefix trie.
func trieMatcher(rc *routev3.RouteConfiguration) *xdsmatcher.Matcher {
	return rc.GetVirtualHosts()[0].GetMatcher().GetMatcherList().GetMatchers()[0].GetOnMatch().GetMatcher()
}

// Only a GET is a launch (BinderHub's BuildHandler.get): every other
// method skips the trie, so a preflight or a HEAD of a launch URL takes
// no rate limit token, gets no ban's answer and goes to BinderHub.
func TestOnlyGETReachesTheLaunchTrie(t *testing.T) {
	e := baseEdge()
	e.Launch.ClientRate = ir.RateLimit{PerSecond: 1, Burst: 1}
	e.Blocks = []ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}}
	for _, inc := range []bool{false, true} {
		var res *Resources
		var err error
		if inc {
			res, err = NewIncremental().Translate(e)
		} else {
			res, err = Translate(e)
		}
		if err != nil {
			t.Fatal(err)
		}
		m := res.Routes[0].VirtualHosts[0].GetMatcher()
		fms := m.GetMatcherList().GetMatchers()
		if len(fms) != 1 {
			t.Fatalf("incremental %v: top matcher has %d field matchers, want 1 (the method)", inc, len(fms))
		}
		sp := fms[0].GetPredicate().GetSinglePredicate()
		var in matcherv3.HttpRequestHeaderMatchInput
		if err := sp.GetInput().GetTypedConfig().UnmarshalTo(&in); err != nil {
			t.Fatal(err)
		}
		if in.GetHeaderName() != ":method" || sp.GetValueMatch().GetExact() != "GET" {
			t.Errorf("incremental %v: top predicate is %s = %v, want :method exactly GET", inc, in.GetHeaderName(), sp.GetValueMatch())
		}
		tree := fms[0].GetOnMatch().GetMatcher().GetMatcherTree()
		if tree.GetPrefixMatchMap().GetMap()[ir.LaunchPrefix] == nil {
			t.Errorf("incremental %v: the GET branch is not the launch trie: %v", inc, tree)
		}
		if got := m.GetOnNoMatch().GetAction().GetName(); got != RoutePassThrough {
			t.Errorf("incremental %v: a request other than GET takes %q, want %q", inc, got, RoutePassThrough)
		}
	}
}

// With the site's cors_allow_origin, every local reply mapper (bans,
// 429, 5xx, and the last one for the edge's 200 direct responses) adds
// BinderHub's CORS headers; without it none does.
func TestEdgeAnswersCarryTheSitesCORSHeaders(t *testing.T) {
	for _, origin := range []string{"", "https://book.example.org"} {
		e := baseEdge()
		e.CORSAllowOrigin = origin
		if _, err := Translate(e); err != nil {
			t.Fatal(err)
		}
		mappers := edgeHCM(e).GetLocalReplyConfig().GetMappers()
		want := 4
		if origin != "" {
			want = 5
		}
		if len(mappers) != want {
			t.Fatalf("origin %q: %d local reply mappers, want %d", origin, len(mappers), want)
		}
		for i, m := range mappers {
			got := map[string]string{}
			for _, h := range m.GetHeadersToAdd() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			if origin == "" {
				if _, ok := got["access-control-allow-origin"]; ok {
					t.Errorf("mapper %d adds access-control-allow-origin without a configured origin", i)
				}
				continue
			}
			if got["access-control-allow-origin"] != origin || got["access-control-allow-headers"] != "cache-control" {
				t.Errorf("mapper %d adds %v, want the origin %q and allow-headers cache-control", i, got, origin)
			}
		}
	}
	e := baseEdge()
	e.CORSAllowOrigin = "*\r\nx-evil: 1"
	if _, err := Translate(e); !errors.Is(err, ir.ErrBadHeader) {
		t.Errorf("an origin that splits a header: %v, want ErrBadHeader", err)
	}
}

func tb(max, perFill uint32, every time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(perFill), FillInterval: durationpb.New(every)}
}

// Discovered gates are an EDS cluster and its assignment, consistent as
// the snapshot cache checks it, and an incremental edit of the gate set
// changes only the assignment's version.
func TestDiscoveredGatesAreServedOverEDS(t *testing.T) {
	e := baseEdge()
	e.Gate = ir.Gate{Discovered: true, Endpoints: []ir.Endpoint{{Host: "10.0.0.1", Port: 8081}, {Host: "10.0.0.2", Port: 8081}}}
	inc := NewIncremental()
	res, err := inc.Translate(e)
	if err != nil {
		t.Fatal(err)
	}
	var gate *clusterv3.Cluster
	for _, c := range res.Clusters {
		if c.GetName() == ClusterGate {
			gate = c
		}
	}
	if gate.GetType() != clusterv3.Cluster_EDS || gate.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil || gate.GetLoadAssignment() != nil {
		t.Fatalf("gate cluster: type %v, eds %v, load assignment %v; want EDS over ADS and no inline endpoints",
			gate.GetType(), gate.GetEdsClusterConfig(), gate.GetLoadAssignment())
	}
	if !gate.GetIgnoreHealthOnHostRemoval() {
		t.Error("a gate removed from EDS would stay while it passes health checks")
	}
	if gate.GetLbPolicy() != clusterv3.Cluster_RING_HASH || len(gate.GetHealthChecks()) != 1 {
		t.Errorf("gate cluster lost its ring hash or health check: %v, %d checks", gate.GetLbPolicy(), len(gate.GetHealthChecks()))
	}
	addrs := func(r *Resources) []string {
		var out []string
		for _, a := range r.Endpoints {
			if a.GetClusterName() != ClusterGate {
				t.Errorf("assignment for %q, want %q", a.GetClusterName(), ClusterGate)
			}
			for _, l := range a.GetEndpoints() {
				for _, lb := range l.GetLbEndpoints() {
					out = append(out, lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
				}
			}
		}
		return out
	}
	if got := addrs(res); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("assigned gates %v, want both", got)
	}
	snap := &cachev3.Snapshot{}
	for typ, items := range res.ByType() {
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources("1", items)
	}
	if err := snap.Consistent(); err != nil {
		t.Errorf("snapshot of discovered gates: %v", err)
	}

	before := inc.ResourceVersions()
	e.Gate.Endpoints = e.Gate.Endpoints[1:]
	res, err = inc.Translate(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(res); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("after one gate left: %v, want 10.0.0.2", got)
	}
	after := inc.ResourceVersions()
	if before[resource.EndpointType][ClusterGate] == after[resource.EndpointType][ClusterGate] {
		t.Error("the gate assignment kept its version after a gate left")
	}
	if !maps.Equal(before[resource.ClusterType], after[resource.ClusterType]) {
		t.Errorf("a gate leaving changed cluster versions %v → %v: Envoy would rebuild the cluster and its held streams' pools", before[resource.ClusterType], after[resource.ClusterType])
	}

	e.Gate.Endpoints = nil
	if res, err = inc.Translate(e); err != nil {
		t.Fatalf("no gates left: %v", err)
	}
	if len(res.Endpoints) != 1 || len(addrs(res)) != 0 {
		t.Errorf("no gates left: %d assignments with %v, want one empty assignment", len(res.Endpoints), addrs(res))
	}
}
