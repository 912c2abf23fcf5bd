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
