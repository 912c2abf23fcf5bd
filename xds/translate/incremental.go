package translate

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/binderguard/binderguard/xds/ir"
)

// Incremental translates a sequence of edges, each like Translate, but
// keeps what it built for every block: a block that did not change since
// the previous call is neither translated, packed, validated nor hashed
// again. With 10,000 bans in place an edit costs the blocks it touches,
// the ban shards on their path (shardSet) and the slot they are in, plus
// a copy of the route map of hot specs and shard prefixes (pointers).
// Profile of the full rebuild it replaced
// (BenchmarkSnapshotToCache, 10,000 bans): about a third each in building
// and packing one route per ban, in validating the whole route
// configuration (twice: translator and server), and in hashing it with a
// deterministic marshal, which sorts the 20,000-entry map.
//
// The output equals Translate's for the same edge (TestIncrementalMatchesTranslate).
// Versions and ResourceVersions return content versions of the output,
// computed from per-entry hashes, so the server need not marshal anything
// to hash it, and delta xDS sends only the slots an edit changed. An Incremental is not safe for concurrent use; it never mutates a
// resource it has returned.
type Incremental struct {
	answers map[answer]*packedAnswer
	entries map[string]*xdsmatcher.Matcher_OnMatch // prefix → its route, for blocks the route configuration answers
	bans    shardSet                               // plain bans, in ECDS shards
	bulk    bool                                   // rebuilding: bans laid out once at the end
	winner  map[string]*packedAnswer               // prefix → its answer, one per prefix (first block wins)
	multi   map[string]int                         // prefix → blocks in the list carrying it, where more than one
	sum     uint64                                 // XOR of entryHash over entries
	hot     map[string]uint64                      // entries of blocks that are not bans (hot specs) → entryHash, for coveredByBan
	invalid map[ir.Block]error                     // bad blocks in the list, skipped

	base          baseCache
	slotLaunch    map[int]packedLaunch // by slot, for the launch settings of base generation slotGen
	slotGen       int
	shardVersions map[string]string
	last          []ir.Block
	built         bool
	versions      map[resource.Type]string
}

// answer is what a block's route depends on besides its prefix; blocks
// with equal answers share one packed route.
type answer struct {
	class   ir.Class
	code    int
	message string
	retry   time.Duration
}

type packedAnswer struct {
	key   answer
	om    *xdsmatcher.Matcher_OnMatch // a route, or a ban shard's action
	shard bool                        // om goes in a ban shard
	hash  uint64                      // of its packed route, or of a ban's failed event (all its chain depends on)
	refs  int                         // entries using it
	// chainName and chain are a ban shard's named filter chain.
	chainName string
	chain     *compositev3.FilterChainConfiguration
}

func answerOf(b ir.Block) answer { return answer{b.Class, b.StatusCode, b.Message, b.RetryAfter} }

// NewIncremental returns an empty Incremental.
func NewIncremental() *Incremental {
	return &Incremental{
		answers:    map[answer]*packedAnswer{},
		entries:    map[string]*xdsmatcher.Matcher_OnMatch{},
		winner:     map[string]*packedAnswer{},
		multi:      map[string]int{},
		hot:        map[string]uint64{},
		invalid:    map[ir.Block]error{},
		slotLaunch: map[int]packedLaunch{},
	}
}

// Translate is Translate(e), reusing what the previous calls built.
// e.Blocks must not be modified after the call (it is kept to diff the
// next call against).
func (t *Incremental) Translate(e *ir.Edge) (*Resources, error) {
	if err := t.base.update(e); err != nil {
		return nil, err
	}
	if err := t.apply(e.Blocks); err != nil {
		return nil, err
	}
	b := t.base.res
	res := &Resources{Listeners: b.Listeners, Clusters: b.Clusters, Endpoints: b.Endpoints}
	var shards []string
	res.Extensions, t.shardVersions, shards = t.bans.resources(t.winner)

	rc := proto.Clone(b.Routes[0]).(*routev3.RouteConfiguration) // small: the map holds the launch entry only
	pm := maps.Clone(t.entries)                                  // the published map is never touched again
	// A hot spec a ban covers is left out, so the ban answers it. The hot
	// entries are few; each costs lookups of its path's prefixes.
	var hidden uint64
	for p, h := range t.hot {
		if coveredByBan(p, t.banned) {
			delete(pm, p)
			hidden ^= h
		}
	}
	pm[ir.LaunchPrefix] = prefixMap(b.Routes[0])[ir.LaunchPrefix]
	// Every shard prefix routes launches with its slot enabled, as
	// addShardRoutes does.
	if t.slotGen != t.base.gen {
		clear(t.slotLaunch)
		t.slotGen = t.base.gen
	}
	t.packLaunches(e.Launch, shards)
	var shardSum uint64
	for _, p := range shards {
		if _, taken := pm[p]; taken && p != ir.LaunchPrefix {
			continue
		}
		sl := t.slotLaunch[slotOf(p)]
		pm[p] = sl.om
		shardSum ^= entryHash(p, sl.hash)
	}
	prefixMapSet(rc, pm)
	res.Routes = []*routev3.RouteConfiguration{rc}

	h := xxhash.New()
	for _, x := range res.Extensions {
		h.WriteString(x.GetName())
		h.WriteString(t.shardVersions[x.GetName()])
	}
	t.versions = maps.Clone(t.base.versions)
	t.versions[resource.RouteType] = fmt.Sprintf("%016x", t.base.routeHash^t.sum^hidden^shardSum)
	t.versions[resource.ExtensionConfigType] = fmt.Sprintf("%016x", h.Sum64())
	return res, t.err()
}

// packLaunches packs the launch route with the slot of each of shards
// enabled, where not packed yet: on a full build for every slot, on the
// CPUs (the goroutines end before it returns).
func (t *Incremental) packLaunches(l ir.Launch, shards []string) {
	var todo []int
	for _, p := range shards {
		i := slotOf(p)
		if _, ok := t.slotLaunch[i]; !ok && !slices.Contains(todo, i) {
			todo = append(todo, i)
		}
	}
	packed := make([]packedLaunch, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo)/16+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(todo); k += workers {
				om := slotLaunch(l, todo[k])
				packed[k] = packedLaunch{om: om, hash: xxhash.Sum64(om.GetMatcher().GetOnNoMatch().GetAction().GetTypedConfig().GetValue())}
			}
		})
	}
	wg.Wait()
	for k, i := range todo {
		t.slotLaunch[i] = packed[k]
	}
}

// packedLaunch is the launch route with one slot enabled.
type packedLaunch struct {
	om   *xdsmatcher.Matcher_OnMatch
	hash uint64
}

// ResourceVersions returns a content version per resource of the last
// Translate's output, by type and name, for delta xDS: a shard an edit did
// not touch keeps its version, so it is not sent again.
func (t *Incremental) ResourceVersions() map[resource.Type]map[string]string {
	out := map[resource.Type]map[string]string{resource.ExtensionConfigType: maps.Clone(t.shardVersions)}
	for typ, rs := range t.base.resourceVersions {
		out[typ] = maps.Clone(rs)
	}
	out[resource.RouteType] = map[string]string{RouteName: t.versions[resource.RouteType]}
	return out
}

// baseCache is Translate's output for an edge without blocks, kept while
// the edge's other parts stay the same.
type baseCache struct {
	edge      ir.Edge // Blocks nil
	res       *Resources
	versions  map[resource.Type]string // listeners, clusters, endpoints
	routeHash uint64                   // of the route configuration without blocks
	// resourceVersions: per listener, cluster and endpoint assignment.
	resourceVersions map[resource.Type]map[string]string
	gen              int // counts rebuilds
}

// update rebuilds c when e's parts other than blocks changed. Everything
// but the blocks is small: Translate builds and validates it, so
// Incremental cannot drift from Translate.
func (c *baseCache) update(e *ir.Edge) error {
	base := *e
	base.Blocks = nil
	if c.res != nil && reflect.DeepEqual(base, c.edge) {
		return nil
	}
	res, err := Translate(&base)
	if err != nil {
		return err
	}
	versions := map[resource.Type]string{}
	perRes := map[resource.Type]map[string]string{}
	var routeHash uint64
	for typ, items := range res.ByType() {
		if typ == resource.ExtensionConfigType {
			continue // the shards are Incremental's
		}
		h := xxhash.New()
		perRes[typ] = map[string]string{}
		for _, r := range items {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				return fmt.Errorf("%w: hashing %T: %w", ErrInvalidEdge, r, err)
			}
			h.Write(strconv.AppendInt(nil, int64(len(b)), 10))
			h.Write(b)
			perRes[typ][cachev3.GetResourceName(r)] = fmt.Sprintf("%016x", xxhash.Sum64(b))
		}
		if typ == resource.RouteType {
			routeHash = h.Sum64()
			continue
		}
		versions[typ] = fmt.Sprintf("%016x", h.Sum64())
	}
	base.Gate.Endpoints = slices.Clone(base.Gate.Endpoints)
	*c = baseCache{edge: base, res: res, versions: versions, routeHash: routeHash, resourceVersions: perRes, gen: c.gen + 1}
	return nil
}

// Versions returns a content version per resource type of the last
// Translate's output: equal outputs, equal versions.
func (t *Incremental) Versions() map[resource.Type]string { return maps.Clone(t.versions) }

// apply brings the prefix map from t.last to blocks. The common head and
// tail of the two lists are skipped (an edit leaves them alone); the
// middle is removed and added entry by entry. When a prefix in the middle
// is carried by more than one block, which block wins depends on order:
// then the whole map is rebuilt, from the packed answers already made.
func (t *Incremental) apply(blocks []ir.Block) error {
	if !t.built {
		t.built = true
		t.last = blocks
		return t.rebuild(blocks)
	}
	old := t.last
	head := 0
	for head < len(old) && head < len(blocks) && old[head] == blocks[head] {
		head++
	}
	tail := 0
	for tail < len(old)-head && tail < len(blocks)-head && old[len(old)-1-tail] == blocks[len(blocks)-1-tail] {
		tail++
	}
	removed, added := old[head:len(old)-tail], blocks[head:len(blocks)-tail]
	t.last = blocks
	for _, b := range slices.Concat(removed, added) {
		if t.multi[b.PathPrefix] > 0 {
			return t.rebuild(blocks)
		}
	}
	for _, b := range removed {
		if _, bad := t.invalid[b]; bad {
			delete(t.invalid, b)
			continue
		}
		t.drop(b.PathPrefix)
	}
	for _, b := range added {
		if t.carried(b.PathPrefix) { // a second block for a prefix in the middle
			return t.rebuild(blocks)
		}
		if err := t.add(b); err != nil {
			return err
		}
	}
	return nil
}

// rebuild makes the map from scratch, keeping packed answers still used.
// Answers not packed yet are packed in parallel first: on a first build
// that is nearly all the work.
func (t *Incremental) rebuild(blocks []ir.Block) error {
	t.bulk = true
	defer func() { t.bulk = false }()
	// Entries go; their answers stay until the blocks are entered again,
	// so an answer still used is not packed twice.
	for p, pa := range t.winner {
		t.place(p, pa, false)
		pa.refs--
	}
	// Sized once for the list, so a first build does not grow it step by step.
	t.winner = make(map[string]*packedAnswer, len(blocks))
	clear(t.multi)
	clear(t.invalid)
	answers, err := t.packNew(blocks)
	if err != nil {
		return err
	}
	for i, b := range blocks {
		_, dup := t.winner[b.PathPrefix]
		if dup || t.carriedInvalid(b.PathPrefix) {
			t.multi[b.PathPrefix] = max(t.multi[b.PathPrefix], 1) + 1
			if dup {
				continue // bans are listed first, so the ban wins over a hot spec
			}
		}
		if answers[i] == nil {
			t.invalid[b] = b.Validate()
			continue
		}
		t.enter(b, answers[i])
	}
	for k, pa := range t.answers {
		if pa.refs == 0 {
			delete(t.answers, k)
		}
	}
	sorted := make([]string, 0, len(t.winner))
	for p, pa := range t.winner {
		if pa.shard {
			sorted = append(sorted, p)
		}
	}
	parallelSort(sorted)
	t.bans.reset(sorted)
	return nil
}

// carried reports whether a block in the list carries prefix p.
func (t *Incremental) carried(p string) bool {
	_, ok := t.winner[p]
	return ok || t.carriedInvalid(p)
}

// carriedInvalid reports whether an invalid block in the list carries p.
func (t *Incremental) carriedInvalid(p string) bool {
	for b := range t.invalid { // few, if any
		if b.PathPrefix == p {
			return true
		}
	}
	return false
}

// parallelSort sorts s, its halves on two goroutines (20,000 prefixes
// sharing long common prefixes take a few ms to sort); both end before
// it returns.
func parallelSort(s []string) {
	if len(s) < 4096 || runtime.GOMAXPROCS(0) < 2 {
		slices.Sort(s)
		return
	}
	mid := len(s) / 2
	var wg sync.WaitGroup
	wg.Go(func() { slices.Sort(s[:mid]) })
	slices.Sort(s[mid:])
	wg.Wait()
	merged := make([]string, 0, len(s))
	a, b := s[:mid], s[mid:]
	for len(a) > 0 && len(b) > 0 {
		if a[0] <= b[0] {
			merged, a = append(merged, a[0]), a[1:]
		} else {
			merged, b = append(merged, b[0]), b[1:]
		}
	}
	copy(s, append(append(merged, a...), b...))
}

// packNew returns each block's answer (nil for an invalid block),
// packing those not packed yet spread over the CPUs; the goroutines end
// before it returns.
func (t *Incremental) packNew(blocks []ir.Block) ([]*packedAnswer, error) {
	answers := make([]*packedAnswer, len(blocks))
	if len(t.answers) == 0 {
		// A first build: sized once, not grown step by step to 10,000.
		t.answers = make(map[answer]*packedAnswer, len(blocks))
	}
	todo := make([]int, 0, len(blocks)) // indices: a block is 80 bytes
	var into []*packedAnswer
	for i, b := range blocks {
		if b.Validate() != nil {
			continue
		}
		k := answerOf(b)
		pa, ok := t.answers[k]
		if !ok {
			pa = &packedAnswer{} // packed below; the map dedupes answers meanwhile
			t.answers[k] = pa
			todo, into = append(todo, i), append(into, pa)
		}
		answers[i] = pa
	}
	errs := make([]error, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo)/256+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			pk := newBanPacker()
			for i := w; i < len(todo); i += workers {
				errs[i] = pack(pk, blocks[todo[i]], into[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, i := range todo {
			delete(t.answers, answerOf(blocks[i]))
		}
		return nil, err
	}
	return answers, nil
}

// pack builds, validates, packs and hashes b's answer into pa, with pk's
// scratch messages: a ban shard's action for a plain ban, else a route.
func pack(pk *banPacker, b ir.Block, pa *packedAnswer) error {
	if toShard(b) {
		name, chain, hash := pk.chain(b)
		if err := chain.ValidateAll(); err != nil {
			return fmt.Errorf("%w: generated ban chain for %q is invalid: %w", ErrInvalidEdge, b.PathPrefix, err)
		}
		*pa = packedAnswer{key: answerOf(b), om: pk.action(name), shard: true, chainName: name, chain: chain, hash: hash}
		return nil
	}
	r := blockRoute(b)
	if err := r.ValidateAll(); err != nil {
		return fmt.Errorf("%w: generated route for %q is invalid: %w", ErrInvalidEdge, b.PathPrefix, err)
	}
	om := onMatchRoute(routeEdgePrefix+string(b.Class), r)
	if err := om.ValidateAll(); err != nil {
		return fmt.Errorf("%w: generated matcher action for %q is invalid: %w", ErrInvalidEdge, b.PathPrefix, err)
	}
	*pa = packedAnswer{key: answerOf(b), om: om, hash: xxhash.Sum64(om.GetAction().GetTypedConfig().GetValue())}
	return nil
}

// add enters b's prefix, unless b is invalid (then it is kept aside).
func (t *Incremental) add(b ir.Block) error {
	if err := b.Validate(); err != nil {
		t.invalid[b] = err
		return nil
	}
	k := answerOf(b)
	pa, ok := t.answers[k]
	if !ok {
		pa = &packedAnswer{}
		if err := pack(newBanPacker(), b, pa); err != nil {
			return err
		}
		t.answers[k] = pa
	}
	t.enter(b, pa)
	return nil
}

// enter makes pa the answer of b, a valid block.
func (t *Incremental) enter(b ir.Block, pa *packedAnswer) {
	pa.refs++
	t.winner[b.PathPrefix] = pa
	t.place(b.PathPrefix, pa, true)
}

// drop removes prefix p's entry and lets its answer go when unused.
func (t *Incremental) drop(p string) {
	pa, ok := t.winner[p]
	if !ok {
		return
	}
	t.place(p, pa, false)
	delete(t.winner, p)
	if pa.refs--; pa.refs == 0 {
		delete(t.answers, pa.key)
	}
}

// banned reports whether p is the prefix of a ban in the list.
func (t *Incremental) banned(p string) bool {
	pa, ok := t.winner[p]
	return ok && pa.key.class == ir.ClassBanned
}

// place adds (or removes) p's entry in the route map or its ban shard.
func (t *Incremental) place(p string, pa *packedAnswer, add bool) {
	if !pa.shard {
		h := entryHash(p, pa.hash)
		t.sum ^= h
		hot := pa.key.class != ir.ClassBanned
		switch {
		case add:
			t.entries[p] = pa.om
			if hot {
				t.hot[p] = h
			}
		default:
			delete(t.entries, p)
			delete(t.hot, p)
		}
		return
	}
	switch {
	case t.bulk: // laid out once at the end
	case add:
		t.bans.insert(p)
	default:
		t.bans.remove(p)
	}
}

// entryHash mixes a prefix's hash with its answer's (splitmix64's
// finalizer), so the XOR of all entries changes with any one of them.
func entryHash(prefix string, answer uint64) uint64 {
	x := xxhash.Sum64String(prefix) ^ (answer * 0x9e3779b97f4a7c15)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// err reports the skipped blocks in a stable order.
func (t *Incremental) err() error {
	if len(t.invalid) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(t.invalid))
	for _, e := range t.invalid {
		msgs = append(msgs, e.Error())
	}
	slices.Sort(msgs)
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		errs[i] = errors.New(m)
	}
	return errors.Join(errs...)
}

// prefixMap and prefixMapSet reach the matcher tree routeConfig builds.
func prefixMap(rc *routev3.RouteConfiguration) map[string]*xdsmatcher.Matcher_OnMatch {
	return trieOf(rc).GetPrefixMatchMap().GetMap()
}

func prefixMapSet(rc *routev3.RouteConfiguration, m map[string]*xdsmatcher.Matcher_OnMatch) {
	trieOf(rc).GetPrefixMatchMap().Map = m
}

// trieOf is the prefix trie on :path under the GET branch of rc's matcher.
func trieOf(rc *routev3.RouteConfiguration) *xdsmatcher.Matcher_MatcherTree {
	get := rc.GetVirtualHosts()[0].GetMatcher().GetMatcherList().GetMatchers()[0]
	return get.GetOnMatch().GetMatcher().GetMatcherTree()
}
