package translate

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	setmetadatav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/set_metadata/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/anypack"
	"github.com/binderguard/binderguard/xds/ir"
)

// Ban shards: plain bans are not in the route configuration but in
// BanSlots small ECDS resources (extension config discovery), so a ban
// edit re-sends, and Envoy rebuilds, one slot of a few shards instead of
// every ban.
//
// A slot is an HTTP filter, disabled by default: a composite filter behind
// a matcher (ExtensionWithMatcher) whose prefix_match_map on :path runs,
// for a banned prefix, set_metadata with the ban's whole answer (one SSE
// failed event) under binderguard:ban. After the slots, one RBAC filter
// denies any request carrying that metadata, and a local reply mapper
// answers the denial as BinderHub answers a ban: 200, text/event-stream,
// the event from the metadata.
//
// The route configuration picks the one slot a launch needs: for each
// shard's prefix it has a copy of the launch route that enables that
// shard's slot (typed_per_filter_config). A launch thus costs the route
// trie and one slot trie whatever the number of bans, and a request that
// is not a launch runs no slot at all.
//
// Shards are laid out canonically, as a function of the set of banned
// prefixes only (so a restarted control plane makes the same resources):
// starting from "/build/", a prefix with more than maxShardPrefixes bans
// under it is split by the next byte of its bans; a prefix that is not
// split is a leaf with every ban under it. A split prefix holds a ban on
// exactly itself. A ban that is a proper prefix of a node's prefix (an
// owner-wide ban above a split) is copied into that node, so the longest
// shard prefix a launch matches always holds every ban it can match. Only
// nodes holding a ban are shards; a launch matching no shard prefix can
// match no ban (it would be held by the deepest node above it). The route
// configuration changes only when a shard appears or goes.
//
// Tried first and measured (BenchmarkBanPropagation, delta xDS, 10,000
// bans): K shard filters every request goes through: K=16 gave 62 ms per
// edit (17x the 10-ban edit), K=64 11 ms (4x) but cost every request ~35%
// over a bare Envoy (BenchmarkNonBuildOverhead), K filters being made per
// request. Then one dispatcher filter from ECDS naming each shard by ECDS
// (composite dynamic_config): Envoy never fetches an ECDS resource first
// named by a filter that itself came by ECDS
// (github.com/envoyproxy/envoy/issues/12061), so the slots are fixed and
// named in the listener.
//
// Why not scoped RDS keyed on the provider and owner path segments: a
// request whose key matches no scope gets no route at all (404), and the
// keys of repositories that are not banned cannot all be listed, so every
// launch of an unbanned repository would fail; the scope key builder has
// no fallback and no hashing. VHDS selects on :authority, not on the path.
const (
	// BanSlots is the number of slot filters. A disabled filter costs a
	// request a lookup in its route's per-filter config; with 10,000 bans
	// (about 200 shards) a slot holds one or two shards.
	BanSlots = 128
	// maxShardPrefixes bounds a shard: Envoy rebuilds a slot of ~100
	// set_metadata actions in a few ms, about what an edit costs with 10
	// bans in place.
	maxShardPrefixes = 128

	banSlotPrefix     = "binderguard.bans."
	banFilterName     = "binderguard.ban"
	banMetaNamespace  = "binderguard"
	banMetaKey        = "ban"
	banActionName     = "ban"
	setMetadataFilter = "envoy.filters.http.set_metadata"
	compositeFilter   = "envoy.filters.http.composite"
)

// extensionWithMatcherType is the type URL Envoy checks an ECDS shard against.
var extensionWithMatcherType = "type.googleapis.com/" + string((&matchingv3.ExtensionWithMatcher{}).ProtoReflect().Descriptor().FullName())

// toShard reports whether b is answered by a ban shard: every plain ban
// (the route configuration keeps hot specs and bans with a Retry-After).
func toShard(b ir.Block) bool { return b.Class == ir.ClassBanned && b.RetryAfter == 0 }

// BanSlotName is the ECDS resource (and HTTP filter) name of slot i.
func BanSlotName(i int) string { return fmt.Sprintf("%s%03d", banSlotPrefix, i) }

// slotOf is the slot of the shard with prefix p.
func slotOf(p string) int { return int(xxhash.Sum64String(p) % BanSlots) }

// banPacker builds bans' chains and actions. Only their packed bytes
// differ from ban to ban, so it packs them from scratch messages it
// reuses: building each ban's set_metadata config and action afresh made
// a third of a full build's garbage. Not safe for concurrent use.
type banPacker struct {
	body *structpb.Value_StringValue
	meta *setmetadatav3.Config
	exec *compositev3.ExecuteFilterAction
}

func newBanPacker() *banPacker {
	body := &structpb.Value_StringValue{}
	return &banPacker{
		body: body,
		meta: &setmetadatav3.Config{Metadata: []*setmetadatav3.Metadata{{
			MetadataNamespace: banMetaNamespace,
			Value:             &structpb.Struct{Fields: map[string]*structpb.Value{banMetaKey: {Kind: body}}},
		}}},
		exec: &compositev3.ExecuteFilterAction{},
	}
}

// chain is a ban's answer as a named filter chain of its slot's
// composite filter: set_metadata with the ban's failed event. The event
// is all the chain depends on, so the chain is named by its hash (also
// returned, for content versions): the two spellings of a ban (and bans
// with one message) share one chain. Envoy builds a filter factory per
// chain, which is most of what a ban costs it, and only a name per prefix.
func (p *banPacker) chain(b ir.Block) (name string, chain *compositev3.FilterChainConfiguration, hash uint64) {
	body := failedBody(b.StatusCode, b.Message)
	p.body.StringValue = body
	chain = &compositev3.FilterChainConfiguration{TypedConfig: []*corev3.TypedExtensionConfig{{
		// One key: the same bytes as a sorted packing, without sorting.
		Name: setMetadataFilter, TypedConfig: anypack.Unsorted(p.meta),
	}}}
	hash = xxhash.Sum64String(body)
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], hash)
	return "ban-" + hex.EncodeToString(h[:]), chain, hash
}

// action is a banned prefix's action: run the named chain.
func (p *banPacker) action(chain string) *xdsmatcher.Matcher_OnMatch {
	p.exec.FilterChainName = chain
	return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{
		Action: &xdscore.TypedExtensionConfig{Name: banActionName, TypedConfig: anypack.Must(p.exec)},
	}}
}

// banSlot is slot i's ECDS resource with the given prefix map and named
// chains (empty: a slot that matches nothing). Its maps are packed in map
// order: a slot's content version is the XOR of its entries' hashes, never
// its bytes, and sorting the keys (20,000 prefixes and 10,000 chains on a
// full build with 10,000 bans) was a fifth of building the slots.
func banSlot(i int, m map[string]*xdsmatcher.Matcher_OnMatch, chains map[string]*compositev3.FilterChainConfiguration) *corev3.TypedExtensionConfig {
	matcher := &xdsmatcher.Matcher{}
	if len(m) > 0 {
		matcher.MatcherType = &xdsmatcher.Matcher_MatcherTree_{MatcherTree: &xdsmatcher.Matcher_MatcherTree{
			Input: pathInput(),
			TreeType: &xdsmatcher.Matcher_MatcherTree_PrefixMatchMap{
				PrefixMatchMap: &xdsmatcher.Matcher_MatcherTree_MatchMap{Map: m},
			},
		}}
	}
	return &corev3.TypedExtensionConfig{
		Name: BanSlotName(i),
		TypedConfig: anypack.Unsorted(&matchingv3.ExtensionWithMatcher{
			XdsMatcher: matcher,
			ExtensionConfig: &corev3.TypedExtensionConfig{
				Name: compositeFilter, TypedConfig: anypack.Unsorted(&compositev3.Composite{NamedFilterChains: chains}),
			},
		}),
	}
}

// slotLaunch is the launch route's matcher action with slot i enabled.
// A filter disabled by default is enabled by a route's FilterConfig, which
// must carry a config: the matcher filter's own per-route type would
// replace the slot's matcher, so it is an empty Router config, marked
// optional, that the router ignores.
func slotLaunch(l ir.Launch, i int) *xdsmatcher.Matcher_OnMatch {
	om := launchOnMatch(l)
	nested := om.GetMatcher()
	action := nested.GetOnNoMatch().GetAction()
	var r routev3.Route
	if err := action.GetTypedConfig().UnmarshalTo(&r); err != nil {
		panic(fmt.Sprintf("translate: unpacking the launch route: %v", err))
	}
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[BanSlotName(i)] = anypack.Must(&routev3.FilterConfig{
		Config: anypack.Must(&routerv3.Router{}), IsOptional: true, Disabled: false,
	})
	action.TypedConfig = anypack.Must(&r)
	return om
}

// splitBans divides e's blocks: plain bans go to the shards, the rest to
// the route configuration. The first valid block for a prefix wins, as in
// the route configuration (bans are listed first, so a ban beats a hot
// spec); invalid blocks stay with the routes, which report them.
func splitBans(blocks []ir.Block) (routes, shards []ir.Block) {
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.Validate() != nil {
			routes = append(routes, b)
			continue
		}
		if seen[b.PathPrefix] {
			continue
		}
		seen[b.PathPrefix] = true
		if toShard(b) {
			shards = append(shards, b)
		} else {
			routes = append(routes, b)
		}
	}
	return routes, shards
}

// dropBannedHot leaves out of routes the hot specs a ban covers (see
// coveredByBan); routes and shards are splitBans' output.
func dropBannedHot(routes, shards []ir.Block) []ir.Block {
	hot := func(b ir.Block) bool { return b.Class != ir.ClassBanned && b.Validate() == nil }
	if !slices.ContainsFunc(routes, hot) {
		return routes // no index of 10,000 bans for nothing
	}
	banned := make(map[string]bool, len(shards))
	for _, b := range slices.Concat(routes, shards) {
		if b.Class == ir.ClassBanned && b.Validate() == nil {
			banned[b.PathPrefix] = true
		}
	}
	return slices.DeleteFunc(routes, func(b ir.Block) bool {
		return hot(b) && coveredByBan(b.PathPrefix, func(p string) bool { return banned[p] })
	})
}

// coveredByBan reports whether a launch on p (a hot spec's path) matches a
// ban: whether isBan holds for p or a prefix of it. The edge picks the
// longest prefix, so a hot spec's full path would beat the shorter ban of
// its repository, owner or pattern and answer a banned launch 429/503;
// the ban must win, so the hot spec is left out. It looks up p's
// prefixes, not the bans (a ban may end mid-segment, a pattern's literal):
// the cost does not grow with the number of bans.
func coveredByBan(p string, isBan func(string) bool) bool {
	for n := len(ir.LaunchPrefix) + 1; n <= len(p); n++ {
		if isBan(p[:n]) {
			return true
		}
	}
	return false
}

// banFilters are the HTTP filters the shards need, to go first in the
// chain: the slots (from ECDS, no default: the listener warms until they
// arrive; disabled unless a route enables one) and the RBAC filter that
// denies what a slot marked.
func banFilters() []*hcmv3.HttpFilter {
	out := make([]*hcmv3.HttpFilter, 0, BanSlots+1)
	for i := range BanSlots {
		out = append(out, &hcmv3.HttpFilter{
			Name:     BanSlotName(i),
			Disabled: true,
			ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
				ConfigSource: adsSource(),
				TypeUrls:     []string{extensionWithMatcherType},
			}},
		})
	}
	deny := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{
		Action: rbacv3.RBAC_DENY,
		Policies: map[string]*rbacv3.Policy{"banned": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
				MetadataMatcher: banMetadataMatcher(),
			}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		}},
	}}
	return append(out, &hcmv3.HttpFilter{Name: banFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anypack.Must(deny)}})
}

func banMetadataMatcher() *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: banMetaNamespace,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: banMetaKey}}},
		Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
	}
}

// banShardMapper answers the RBAC denial of a sharded ban with the answer
// the shard put in the metadata, as banMapper does for a ban route.
func banShardMapper(cors []*corev3.HeaderValueOption) *hcmv3.ResponseMapper {
	m := banMapper(cors)
	m.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
		AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{
			m.Filter,
			{FilterSpecifier: &accesslogv3.AccessLogFilter_MetadataFilter{MetadataFilter: &accesslogv3.MetadataFilter{
				Matcher: banMetadataMatcher(), MatchIfKeyNotFound: wrapperspb.Bool(false),
			}}},
		}},
	}}
	m.BodyFormatOverride = &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: "%DYNAMIC_METADATA(" + banMetaNamespace + ":" + banMetaKey + ")%"},
		}},
		ContentType: "text/event-stream; charset=UTF-8",
	}
	return m
}

// banLayout is the canonical shard layout of sorted, unique ban prefixes:
// every shard prefix, in order, and the range of bans under each leaf.
type banLayout struct {
	prefixes []string
	leaf     map[string]bool
}

// layoutOf lays out sorted (ascending, unique) prefixes under root.
func layoutOf(sorted []string) banLayout {
	l := banLayout{leaf: map[string]bool{}}
	var walk func(s string, lo, hi int)
	walk = func(s string, lo, hi int) {
		l.prefixes = append(l.prefixes, s)
		if hi-lo <= maxShardPrefixes {
			l.leaf[s] = true
			return
		}
		for _, c := range childrenOf(sorted, s, lo, hi) {
			walk(c.prefix, c.lo, c.hi)
		}
	}
	lo, hi := rangeOf(sorted, ir.LaunchPrefix)
	walk(ir.LaunchPrefix, lo, hi)
	return l
}

type child struct {
	prefix string
	lo, hi int
}

// childrenOf groups the bans under split prefix s (sorted[lo:hi]) by
// their next byte; each group's prefix is s and that byte. A ban equal to
// s sorts first and belongs to no group. One byte a step (not the groups'
// longest common prefixes) keeps the layout still under edits: a new ban
// changes a group's prefix only by creating it.
func childrenOf(sorted []string, s string, lo, hi int) []child {
	var out []child
	i := lo
	if i < hi && sorted[i] == s {
		i++
	}
	for i < hi {
		c := sorted[i][len(s)]
		j := i + sort.Search(hi-i, func(k int) bool { return sorted[i+k][len(s)] > c })
		out = append(out, child{prefix: sorted[i][:len(s)+1], lo: i, hi: j})
		i = j
	}
	return out
}

// rangeOf is the range of sorted holding the strings that start with s.
func rangeOf(sorted []string, s string) (int, int) {
	lo := sort.SearchStrings(sorted, s)
	hi := lo + sort.Search(len(sorted)-lo, func(k int) bool { return !strings.HasPrefix(sorted[lo+k], s) })
	return lo, hi
}

// shardMembers are the bans a shard holds: for a leaf every ban under its
// prefix, for a split prefix only a ban on exactly itself, and in both
// cases the bans that are proper prefixes of it.
func shardMembers(sorted []string, s string, leaf bool, isBan func(string) bool) []string {
	var out []string
	for k := len(ir.LaunchPrefix); k < len(s); k++ {
		if isBan(s[:k]) {
			out = append(out, s[:k])
		}
	}
	if !leaf {
		if isBan(s) {
			out = append(out, s)
		}
		return out
	}
	lo, hi := rangeOf(sorted, s)
	return append(out, sorted[lo:hi]...)
}

// banShards lays out the plain bans in blocks (valid, first block for a
// prefix already chosen): the slot resources, and the prefix of every
// shard, for the route configuration.
func banShards(blocks []ir.Block) ([]*corev3.TypedExtensionConfig, []string) {
	byPrefix := make(map[string]ir.Block, len(blocks))
	sorted := make([]string, 0, len(blocks))
	for _, b := range blocks {
		byPrefix[b.PathPrefix] = b
		sorted = append(sorted, b.PathPrefix)
	}
	slices.Sort(sorted)
	l := layoutOf(sorted)
	isBan := func(p string) bool { _, ok := byPrefix[p]; return ok }
	slots := make([]map[string]*xdsmatcher.Matcher_OnMatch, BanSlots)
	chains := make([]map[string]*compositev3.FilterChainConfiguration, BanSlots)
	var shards []string
	pk := newBanPacker()
	for _, s := range l.prefixes {
		members := shardMembers(sorted, s, l.leaf[s], isBan)
		if len(members) == 0 {
			continue
		}
		shards = append(shards, s)
		i := slotOf(s)
		if slots[i] == nil {
			slots[i] = map[string]*xdsmatcher.Matcher_OnMatch{}
			chains[i] = map[string]*compositev3.FilterChainConfiguration{}
		}
		for _, p := range members {
			name, chain, _ := pk.chain(byPrefix[p])
			slots[i][p] = pk.action(name)
			chains[i][name] = chain
		}
	}
	out := make([]*corev3.TypedExtensionConfig, BanSlots)
	for i := range out {
		out[i] = banSlot(i, slots[i], chains[i])
	}
	return out, shards
}

// addShardRoutes gives every shard prefix a launch route with its slot
// enabled ("/build/" itself when the root is a shard). A prefix the route
// configuration already answers (a hot spec on exactly that prefix) keeps
// its answer.
func addShardRoutes(rc *routev3.RouteConfiguration, l ir.Launch, shards []string) {
	pm := prefixMap(rc)
	for _, s := range shards {
		if _, taken := pm[s]; taken && s != ir.LaunchPrefix {
			continue
		}
		pm[s] = slotLaunch(l, slotOf(s))
	}
}
