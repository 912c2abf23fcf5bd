package translate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/binderguard/binderguard/xds/ir"
)

func banAt(i int, msg string) ir.Block {
	return ir.Block{PathPrefix: fmt.Sprintf("/build/gh/o%d/r/", i), Class: ir.ClassBanned, StatusCode: 403, Message: msg}
}

// TestIncrementalMatchesTranslate walks edit sequences and checks that
// every step's output equals a fresh Translate of the same edge, and that
// its versions equal a fresh Incremental's (so a content version never
// depends on the path taken to a state).
func TestIncrementalMatchesTranslate(t *testing.T) {
	ten := make([]ir.Block, 10)
	for i := range ten {
		ten[i] = banAt(i, fmt.Sprint("ban ", i))
	}
	hot := ir.Block{PathPrefix: "/build/gh/o3/r/", Class: ir.ClassSaturated, StatusCode: 429, Message: "full", RetryAfter: 30 * time.Second}
	hotUnder := ir.Block{PathPrefix: "/build/gh/o3/r/HEAD", Class: ir.ClassBreakerOpen, StatusCode: 503, Message: "later", RetryAfter: time.Minute}
	bad := ir.Block{PathPrefix: "/nope/", Class: ir.ClassBanned, StatusCode: 403, Message: "x"}
	shared := ir.Block{PathPrefix: "/build/gh/other/r/", Class: ir.ClassBanned, StatusCode: 403, Message: "ban 2"}
	tests := map[string][][]ir.Block{
		"appending, inserting and removing bans": {
			ten,
			append(slices.Clone(ten), banAt(10, "new")),
			slices.Concat(ten[:5], []ir.Block{banAt(99, "middle")}, ten[5:]),
			ten[1:],
			nil,
			ten,
		},
		"editing a ban's message": {
			ten,
			slices.Concat(ten[:4], []ir.Block{banAt(4, "edited")}, ten[5:]),
			ten,
		},
		"a hot spec on a banned prefix loses to the ban, and wins once the ban goes": {
			append(slices.Clone(ten), hot),
			append(slices.Concat(ten[:3], ten[4:]), hot),
			append(slices.Clone(ten), hot),
			ten,
		},
		"a hot spec under a banned prefix is left out until the ban goes": {
			append(slices.Clone(ten), hotUnder),
			append(slices.Concat(ten[:3], ten[4:]), hotUnder),
			append(slices.Clone(ten), hotUnder),
			slices.Concat(ten[:3], []ir.Block{{PathPrefix: "/build/gh/o3/", Class: ir.ClassBanned, StatusCode: 403, Message: "owner"}}, ten[4:], []ir.Block{hotUnder}),
			ten,
		},
		"two bans sharing an answer share a route": {
			append(slices.Clone(ten), shared),
			ten,
			append(slices.Clone(ten), shared),
		},
		"an invalid block is skipped and reported until it goes": {
			append(slices.Clone(ten), bad),
			slices.Concat(ten[:2], []ir.Block{bad}, ten[2:]),
			ten,
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			inc := NewIncremental()
			for i, blocks := range steps {
				e := baseEdge()
				e.Blocks = blocks
				got, gotErr := inc.Translate(e)
				want, wantErr := Translate(e)
				if (gotErr == nil) != (wantErr == nil) {
					t.Fatalf("step %d: error %v, Translate's %v", i, gotErr, wantErr)
				}
				if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
					t.Fatalf("step %d: output differs from Translate (-want +got):\n%s", i, diff)
				}
				fresh := NewIncremental()
				if _, err := fresh.Translate(e); (err == nil) != (wantErr == nil) {
					t.Fatalf("step %d: fresh error %v", i, err)
				}
				if diff := cmp.Diff(fresh.Versions(), inc.Versions()); diff != "" {
					t.Errorf("step %d: versions depend on the edit path (-fresh +incremental):\n%s", i, diff)
				}
				if i > 0 {
					prevOut, _ := Translate(&ir.Edge{Listener: e.Listener, Binder: e.Binder, Gate: e.Gate, Launch: e.Launch, Blocks: steps[i-1]})
					same := cmp.Equal(prevOut.Routes, got.Routes, protocmp.Transform())
					if sameVersion := inc.Versions()[routeType] == prevRouteVersion(t, steps[i-1]); same != sameVersion {
						t.Errorf("step %d: routes unchanged %v, route version unchanged %v", i, same, sameVersion)
					}
				}
			}
		})
	}
}

const routeType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

func prevRouteVersion(t *testing.T, blocks []ir.Block) string {
	t.Helper()
	e := baseEdge()
	e.Blocks = blocks
	inc := NewIncremental()
	inc.Translate(e)
	return inc.Versions()[routeType]
}

// Random edits of a few hundred bans split and merge shards; after each
// the output must equal a fresh Translate's, the layout being canonical.
func TestIncrementalShardLayoutFollowsEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var blocks []ir.Block
	owners := []string{"a", "ab", "abc", "b"}
	inc := NewIncremental()
	for step := range 1500 {
		switch r := rng.IntN(10); {
		case r < 6 || len(blocks) < 10:
			p := fmt.Sprintf("/build/gh/%s/r%d/", owners[rng.IntN(len(owners))], rng.IntN(300))
			if rng.IntN(20) == 0 {
				p = fmt.Sprintf("/build/gh/%s/", owners[rng.IntN(len(owners))]) // an owner-wide ban
			}
			i := rng.IntN(len(blocks) + 1)
			blocks = slices.Insert(slices.Clone(blocks), i, ir.Block{PathPrefix: p, Class: ir.ClassBanned, StatusCode: 403, Message: fmt.Sprint("m", step)})
		case r < 9:
			i := rng.IntN(len(blocks))
			blocks = slices.Delete(slices.Clone(blocks), i, i+1)
		default:
			i := rng.IntN(len(blocks))
			blocks = slices.Clone(blocks)
			blocks[i].Message = fmt.Sprint("edited ", step)
		}
		e := baseEdge()
		e.Blocks = blocks
		got, _ := inc.Translate(e)
		want, _ := Translate(e)
		same := len(want.Extensions) == len(got.Extensions) && proto.Equal(want.Routes[0], got.Routes[0])
		for i := 0; same && i < len(got.Extensions); i++ {
			same = sameSlot(t, want.Extensions[i], got.Extensions[i])
		}
		if !same {
			t.Fatalf("step %d (%d blocks): slots or routes differ from Translate (-want +got):\n%s", step, len(blocks),
				cmp.Diff(want, got, protocmp.Transform()))
		}
		if step%50 == 0 {
			prefixes(t, got) // every ban is where the dispatcher sends it
		}
	}
	if len(inc.bans.nodes) < 5 {
		t.Errorf("only %d shards: the test never split", len(inc.bans.nodes))
	}
}

// sameSlot compares two slots by their unpacked content: their bytes
// differ in map order (the prefix map's, and the composite filter's
// chains', packed in an Any of its own).
func sameSlot(t *testing.T, a, b *corev3.TypedExtensionConfig) bool {
	t.Helper()
	unpack := func(x *corev3.TypedExtensionConfig) (*matchingv3.ExtensionWithMatcher, *compositev3.Composite) {
		var m matchingv3.ExtensionWithMatcher
		var c compositev3.Composite
		if err := x.GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		if err := m.GetExtensionConfig().GetTypedConfig().UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		m.ExtensionConfig.TypedConfig = nil
		return &m, &c
	}
	am, ac := unpack(a)
	bm, bc := unpack(b)
	return a.GetName() == b.GetName() && proto.Equal(am, bm) && proto.Equal(ac, bc)
}

// The edits that reshape the layout, one by one: a split, a group whose
// common prefix shortens (its subtree is swapped), an owner-wide ban
// above split shards (copied into each), and their undoing.
func TestIncrementalShardLayoutReshapes(t *testing.T) {
	ban := func(p string) ir.Block {
		return ir.Block{PathPrefix: p, Class: ir.ClassBanned, StatusCode: 403, Message: p}
	}
	var many []ir.Block
	for i := range 2 * maxShardPrefixes {
		many = append(many, ban(fmt.Sprintf("/build/gh/ab/%c%d/", "rs"[i%2], i)))
	}
	steps := [][]ir.Block{
		many[:maxShardPrefixes], // one shard
		many,                    // split
		append(slices.Clone(many), ban("/build/gh/a/x/")),                       // the common prefix shortens to /build/gh/a
		append(slices.Clone(many), ban("/build/gh/a/x/"), ban("/build/gh/ab/")), // owner-wide ban above the split
		append(slices.Clone(many), ban("/build/gh/ab/")),
		many[maxShardPrefixes/2:],
		many[:1],
	}
	inc := NewIncremental()
	for i, blocks := range steps {
		e := baseEdge()
		e.Blocks = blocks
		got, _ := inc.Translate(e)
		want, _ := Translate(e)
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("step %d: output differs from Translate (-want +got):\n%s", i, diff)
		}
		prefixes(t, got)
	}
}

// A returned route configuration is never changed by a later call: the
// server may still be sending it.
func TestIncrementalLeavesPublishedOutputAlone(t *testing.T) {
	inc := NewIncremental()
	e := baseEdge()
	e.Blocks = []ir.Block{banAt(1, "a")}
	hot := func(i int) ir.Block {
		return ir.Block{PathPrefix: fmt.Sprintf("/build/gh/h%d/r/", i), Class: ir.ClassSaturated, StatusCode: 429, Message: "full"}
	}
	e.Blocks = []ir.Block{banAt(1, "a"), hot(1)}
	first, _ := inc.Translate(e)
	snap := proto.Clone(first.Routes[0])
	var shards []proto.Message
	for _, x := range first.Extensions {
		shards = append(shards, proto.Clone(x))
	}
	e2 := baseEdge()
	e2.Blocks = []ir.Block{banAt(1, "a"), banAt(2, "b"), banAt(3, "c"), hot(1), hot(2)}
	inc.Translate(e2)
	if !proto.Equal(snap, first.Routes[0]) {
		t.Error("the first output's route configuration changed")
	}
	for i, x := range first.Extensions {
		if !proto.Equal(shards[i], x) {
			t.Errorf("the first output's shard %d changed", i)
		}
	}
}

// BenchmarkIncrementalEdit: one ban added to 10,000 in place.
func BenchmarkIncrementalEdit(b *testing.B) {
	e := manyBans(10000)
	inc := NewIncremental()
	if _, err := inc.Translate(e); err != nil {
		b.Fatal(err)
	}
	// The edit toggles one ban in the middle of the list on and off.
	with, without := *e, *e
	with.Blocks = slices.Insert(slices.Clone(e.Blocks), len(e.Blocks)/2, banAt(100000, "new"))
	edges := [2]*ir.Edge{&with, &without}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		if _, err := inc.Translate(edges[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/edit")
}

// A rebuild (here: an edit touching a prefix two blocks carry, as two
// RepoBans naming one repository do) that makes shards vanish must
// rebuild their slots: left alone, a slot keeps the removed bans and the
// version it had, so Envoy goes on holding them.
func TestIncrementalRebuildEmptiesVanishedShards(t *testing.T) {
	ban := func(p string) ir.Block {
		return ir.Block{PathPrefix: p, Class: ir.ClassBanned, StatusCode: 403, Message: p}
	}
	var many []ir.Block
	for i := range 4 * maxShardPrefixes {
		many = append(many, ban(fmt.Sprintf("/build/gh/ab/%c%d/", "rstu"[i%4], i)))
	}
	twice := ban("/build/gh/twice/r/")
	steps := [][]ir.Block{
		append(slices.Clone(many), twice, twice), // split into many shards
		{many[0], twice},                         // one shard; the edit rebuilds
	}
	inc := NewIncremental()
	for i, blocks := range steps {
		e := baseEdge()
		e.Blocks = blocks
		got, _ := inc.Translate(e)
		want, _ := Translate(e)
		for k := range got.Extensions {
			if !sameSlot(t, want.Extensions[k], got.Extensions[k]) {
				t.Errorf("step %d: slot %s differs from Translate's", i, got.Extensions[k].GetName())
			}
		}
		fresh := NewIncremental()
		fresh.Translate(e)
		if diff := cmp.Diff(fresh.ResourceVersions(), inc.ResourceVersions()); diff != "" {
			t.Errorf("step %d: slot versions depend on the edit path (-fresh +incremental):\n%s", i, diff)
		}
	}
}

// An edit that rebuilds the map (here: a second block for a prefix
// already carried) keeps the answers still used instead of packing them
// again: with 10,000 bans, packing is most of a full build.
func TestIncrementalRebuildKeepsPackedAnswers(t *testing.T) {
	ten := make([]ir.Block, 10)
	for i := range ten {
		ten[i] = banAt(i, fmt.Sprint("ban ", i))
	}
	inc := NewIncremental()
	e := baseEdge()
	e.Blocks = ten
	if _, err := inc.Translate(e); err != nil {
		t.Fatal(err)
	}
	before := inc.winner[ten[7].PathPrefix]
	e2 := baseEdge()
	e2.Blocks = append(slices.Clone(ten), ten[3]) // carried twice: a rebuild
	got, err := inc.Translate(e2)
	if err != nil {
		t.Fatal(err)
	}
	if after := inc.winner[ten[7].PathPrefix]; after != before {
		t.Error("an untouched ban's answer was packed again")
	}
	want, _ := Translate(e2)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("output differs from Translate (-want +got):\n%s", diff)
	}
	if len(inc.answers) != len(ten) {
		t.Errorf("%d answers kept for %d distinct answers", len(inc.answers), len(ten))
	}
}
