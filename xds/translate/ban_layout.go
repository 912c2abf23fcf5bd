package translate

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/binderguard/binderguard/xds/ir"
)

// shardSet keeps the ban shards' canonical layout (see layoutOf) in step
// with single-ban edits: an edit walks from "/build/" down the one path
// to its prefix and relays out only a subtree whose shape changed, so it
// costs the shards it touches, and the result equals layoutOf of the whole
// set (TestIncrementalMatchesTranslate).
type shardSet struct {
	sorted []string              // banned prefixes in the shards, ascending
	nodes  map[string]*shardNode // layout node prefix → node
	dirty  map[string]bool       // nodes whose members may have changed
	moved  bool                  // the set of shards (nodes holding a ban) changed
	out    map[string]*shardOut  // shard prefix → its members, for nodes holding a ban

	shards    []string // prefixes of out, sorted
	slotDirty [BanSlots]bool
	slotRes   [BanSlots]*corev3.TypedExtensionConfig
	slotSum   [BanSlots]uint64
}

type shardNode struct {
	leaf     bool
	children []string
}

type shardOut struct {
	members []string // ascending
	sum     uint64   // XOR of entryHash over its members
}

// reset lays out sorted (ascending, unique) from scratch.
func (s *shardSet) reset(sorted []string) {
	s.sorted = sorted
	s.nodes = map[string]*shardNode{}
	s.dirty = map[string]bool{}
	if s.out == nil {
		s.out = map[string]*shardOut{}
	}
	lo, hi := rangeOf(sorted, ir.LaunchPrefix)
	s.build(ir.LaunchPrefix, lo, hi)
	for p := range s.out {
		if s.nodes[p] == nil {
			delete(s.out, p)
		}
	}
	s.moved = true
}

// insert and remove change one banned prefix and relay out its path.
func (s *shardSet) insert(p string) {
	i, found := slices.BinarySearch(s.sorted, p)
	if !found {
		s.sorted = slices.Insert(s.sorted, i, p)
	}
	s.refresh(p)
}

func (s *shardSet) remove(p string) {
	if i, found := slices.BinarySearch(s.sorted, p); found {
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
	s.refresh(p)
}

// refresh follows p's path and relays out where the shape changed; the
// shards on the path, and those p is an owner-wide ban above, are dirty.
func (s *shardSet) refresh(p string) {
	for q := range s.nodes {
		if len(q) > len(p) && strings.HasPrefix(q, p) {
			s.dirty[q] = true
		}
	}
	at := ir.LaunchPrefix
	for {
		n := s.nodes[at]
		lo, hi := rangeOf(s.sorted, at)
		leaf := hi-lo <= maxShardPrefixes
		if leaf != n.leaf {
			s.drop(at)
			s.build(at, lo, hi)
			s.moved = true
			return
		}
		s.dirty[at] = true
		if leaf || p == at {
			return
		}
		next := p[len(at)]
		kids := childrenOf(s.sorted, at, lo, hi)
		var now *child
		for i := range kids {
			if kids[i].prefix[len(at)] == next {
				now = &kids[i]
			}
		}
		was := ""
		for _, c := range n.children {
			if c[len(at)] == next {
				was = c
			}
		}
		if now != nil && now.prefix == was {
			at = was
			continue
		}
		// The group of p's next byte appeared or went: swap that subtree.
		if was != "" {
			s.drop(was)
		}
		n.children = n.children[:0]
		for _, k := range kids {
			n.children = append(n.children, k.prefix)
		}
		if now != nil {
			s.build(now.prefix, now.lo, now.hi)
		}
		s.moved = true
		return
	}
}

func (s *shardSet) build(at string, lo, hi int) {
	n := &shardNode{leaf: hi-lo <= maxShardPrefixes}
	s.nodes[at] = n
	s.dirty[at] = true
	if n.leaf {
		return
	}
	for _, k := range childrenOf(s.sorted, at, lo, hi) {
		n.children = append(n.children, k.prefix)
		s.build(k.prefix, k.lo, k.hi)
	}
}

func (s *shardSet) drop(at string) {
	n := s.nodes[at]
	if n == nil {
		return
	}
	for _, c := range n.children {
		s.drop(c)
	}
	delete(s.nodes, at)
	delete(s.dirty, at)
	if s.out[at] != nil {
		delete(s.out, at)
		s.slotDirty[slotOf(at)] = true
		s.moved = true
	}
}

// resources returns the slots, rebuilding only those holding a shard
// whose members changed, with a version each, and the shard prefixes.
func (s *shardSet) resources(winner map[string]*packedAnswer) ([]*corev3.TypedExtensionConfig, map[string]string, []string) {
	isBan := func(p string) bool { pa := winner[p]; return pa != nil && pa.shard }
	for p := range s.dirty {
		var members []string
		if n := s.nodes[p]; n != nil {
			members = shardMembers(s.sorted, p, n.leaf, isBan)
		}
		o := s.out[p]
		if len(members) == 0 {
			if o != nil {
				delete(s.out, p)
				s.slotDirty[slotOf(p)] = true
				s.moved = true
			}
			continue
		}
		var sum uint64
		for _, m := range members {
			sum ^= entryHash(m, winner[m].hash)
		}
		if o != nil && o.sum == sum {
			continue
		}
		if o == nil {
			s.moved = true
		}
		s.out[p] = &shardOut{members: members, sum: sum}
		s.slotDirty[slotOf(p)] = true
	}
	clear(s.dirty)
	if s.moved || s.shards == nil {
		s.shards = slices.Sorted(maps.Keys(s.out))
		s.moved = false
	}
	var bySlot [BanSlots][]string
	for i := range s.slotDirty {
		if s.slotDirty[i] || s.slotRes[i] == nil {
			bySlot[i] = []string{} // to rebuild
		}
	}
	for _, p := range s.shards {
		if i := slotOf(p); bySlot[i] != nil {
			bySlot[i] = append(bySlot[i], p)
		}
	}
	// Packing a slot marshals its whole map: on a full build that is all
	// 20,000 entries, so dirty slots are packed on every CPU; the
	// goroutines end before the loop below.
	var todo []int
	for i := range BanSlots {
		if bySlot[i] != nil {
			todo = append(todo, i)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(todo); k += workers {
				i := todo[k]
				var keys []string
				var sum uint64
				for _, p := range bySlot[i] {
					keys = append(keys, s.out[p].members...)
					sum ^= entryHash(p, s.out[p].sum)
				}
				if len(bySlot[i]) > 1 {
					// Shards are in order, and so are their members, but an
					// owner-wide ban may sit in several.
					slices.Sort(keys)
					keys = slices.Compact(keys)
				}
				s.slotRes[i], s.slotSum[i], s.slotDirty[i] = packSlot(i, keys, winner), sum, false
			}
		})
	}
	wg.Wait()
	versions := make(map[string]string, BanSlots)
	for i := range BanSlots {
		versions[BanSlotName(i)] = fmt.Sprintf("%016x", entryHash(BanSlotName(i), s.slotSum[i]))
	}
	return slices.Clone(s.slotRes[:]), versions, s.shards
}

// packSlot is banSlot(i, the actions and chains of keys), with the
// slot's bytes put together from each answer's bytes, marshalled once
// when it was packed: marshalling the slot's map again is most of a full
// build. keys are ascending and unique.
func packSlot(i int, keys []string, m map[string]*packedAnswer) *corev3.TypedExtensionConfig {
	field := func(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }
	mapLen := 0
	chains := map[string][]byte{}
	for _, k := range keys {
		mapLen += field(field(len(k)) + field(len(m[k].omBytes)))
		chains[m[k].chain] = m[k].chainRaw
	}
	names := slices.Sorted(maps.Keys(chains))
	compositeLen := 0 // Composite.named_filter_chains
	for _, n := range names {
		compositeLen += field(field(len(n)) + field(len(chains[n])))
	}
	anyLen := field(len(compositeTypeURL)) + field(compositeLen)
	extLen := field(len(compositeFilter)) + field(anyLen) // TypedExtensionConfig: name, typed_config
	matcher := 0
	if len(keys) > 0 {
		matcher = field(field(len(slotInput)) + field(mapLen)) // Matcher.matcher_tree: input, prefix_match_map
	}
	out := make([]byte, 0, field(matcher)+field(extLen))
	open := func(num protowire.Number, n int) {
		out = protowire.AppendVarint(protowire.AppendTag(out, num, protowire.BytesType), uint64(n))
	}
	str := func(num protowire.Number, v []byte) { open(num, len(v)); out = append(out, v...) }
	open(3, matcher) // ExtensionWithMatcher.xds_matcher
	if len(keys) > 0 {
		open(2, field(len(slotInput))+field(mapLen)) // Matcher.matcher_tree
		str(1, slotInput)                            // MatcherTree.input
		open(3, mapLen)                              // MatcherTree.prefix_match_map
		for _, k := range keys {                     // MatchMap.map
			om := m[k].omBytes
			open(1, field(len(k))+field(len(om)))
			str(1, []byte(k))
			str(2, om)
		}
	}
	open(2, extLen) // ExtensionWithMatcher.extension_config
	str(1, []byte(compositeFilter))
	open(2, anyLen)
	str(1, []byte(compositeTypeURL))
	open(2, compositeLen)
	for _, n := range names {
		open(1, field(len(n))+field(len(chains[n])))
		str(1, []byte(n))
		str(2, chains[n])
	}
	return &corev3.TypedExtensionConfig{Name: BanSlotName(i), TypedConfig: &anypb.Any{TypeUrl: extensionWithMatcherType, Value: out}}
}

var (
	slotInput        = mustMarshal(pathInput())
	compositeTypeURL = "type.googleapis.com/" + string((&compositev3.Composite{}).ProtoReflect().Descriptor().FullName())
)

func mustMarshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("translate: marshalling %T: %v", m, err))
	}
	return b
}
