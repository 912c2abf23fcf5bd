package translate

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"

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
			// Its slot still holds its bans: rebuild it without them.
			delete(s.out, p)
			s.slotDirty[slotOf(p)] = true
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
	// Building a slot marshals its whole map (deterministically, so its
	// keys are sorted): on a full build that is all 20,000 entries, so
	// dirty slots are built on every CPU; the goroutines end before the
	// loop below.
	var todo []int
	for i := range BanSlots {
		if bySlot[i] != nil {
			todo = append(todo, i)
		}
	}
	// Slots differ in size (one shard or several): each worker takes the
	// next slot left, so none idles while another has a queue.
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := int(next.Add(1)) - 1; k < len(todo); k = int(next.Add(1)) - 1 {
				i := todo[k]
				var sum uint64
				for _, p := range bySlot[i] {
					sum ^= entryHash(p, s.out[p].sum)
				}
				s.slotRes[i], s.slotSum[i], s.slotDirty[i] = slotOfShards(i, bySlot[i], s.out, winner), sum, false
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

// slotOfShards is slot i holding the given shards: banSlot with each
// member's action and chain, built when its answer was packed. An
// owner-wide ban may sit in several shards; the map takes it once.
func slotOfShards(i int, shards []string, out map[string]*shardOut, winner map[string]*packedAnswer) *corev3.TypedExtensionConfig {
	n := 0
	for _, p := range shards {
		n += len(out[p].members)
	}
	m := make(map[string]*xdsmatcher.Matcher_OnMatch, n)
	chains := make(map[string]*compositev3.FilterChainConfiguration, n)
	for _, p := range shards {
		for _, k := range out[p].members {
			pa := winner[k]
			m[k] = pa.om
			chains[pa.chainName] = pa.chain
		}
	}
	return banSlot(i, m, chains)
}
