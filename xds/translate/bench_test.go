package translate

import (
	"fmt"
	"testing"

	"github.com/binderguard/binderguard/xds/ir"
)

// ManyBans returns an edge with n banned repositories, two spellings each
// (gh/ and git/ URL), as the policy snapshot lists them.
func manyBans(n int) *ir.Edge {
	e := baseEdge()
	for i := range n {
		msg := fmt.Sprintf("repository %d is banned", i)
		e.Blocks = append(e.Blocks,
			ir.Block{PathPrefix: fmt.Sprintf("/build/gh/org%d/repo%d/", i, i), Class: ir.ClassBanned, StatusCode: 403, Message: msg},
			ir.Block{PathPrefix: fmt.Sprintf("/build/git/https%%3A%%2F%%2Fgithub.com%%2Forg%d%%2Frepo%d/", i, i), Class: ir.ClassBanned, StatusCode: 403, Message: msg})
	}
	return e
}

// BenchmarkTranslate10000Bans: the bound is 250 ms for 10,000 bans
// (plus 1,000 launch policies, which the edge reduces to one launch route).
func BenchmarkTranslate10000Bans(b *testing.B) {
	e := manyBans(10000)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Translate(e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/translate")
}

// BenchmarkHotSpecEdit: one hot spec toggled with 100 hot specs in place,
// half of them under a ban. Whether a hot spec is banned is looked up by
// its path's prefixes, not by scanning the bans: the check adds nothing
// measurable at 10,000 bans. What grows with the bans (about 3x from 10 to
// 10,000, with or without the check) is the route map of shard prefixes.
func BenchmarkHotSpecEdit(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("bans=%d", n), func(b *testing.B) {
			e := manyBans(n)
			for i := range 100 {
				owner := fmt.Sprintf("org%d/repo%d", i%n, i%n) // banned while i%2 == 0
				if i%2 == 1 {
					owner = fmt.Sprintf("hot%d/repo", i)
				}
				e.Blocks = append(e.Blocks, ir.Block{PathPrefix: "/build/gh/" + owner + "/HEAD", Class: ir.ClassSaturated, StatusCode: 429, Message: "full"})
			}
			with := e.Blocks
			without := with[:len(with)-1]
			inc := NewIncremental()
			if _, err := inc.Translate(e); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				e.Blocks = with
				if i%2 == 1 {
					e.Blocks = without
				}
				if _, err := inc.Translate(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
