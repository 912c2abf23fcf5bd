package match

import (
	"fmt"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/spec"
)

// banIndex10k is 9,900 repository bans plus 100 pattern bans shaped like
// mybinder's list: 95 "^owner/repo.*" prefixes (some scoped to gh, some to
// git URLs) and 5 unanchored ".*word.*" patterns that every check must run.
func banIndex10k(b *testing.B) *BanIndex {
	b.Helper()
	bans := make([]Ban, 0, 10000)
	for i := range 9900 {
		bans = append(bans, Ban{
			Policy: fmt.Sprintf("RepoBan/binder/repo-%d", i),
			Repos:  []spec.Repo{spec.Repo(fmt.Sprintf("github.com/owner-%d/repo-%d", i%997, i))},
		})
	}
	for i := range 100 {
		var p Pattern
		switch {
		case i < 5:
			p = pat("", fmt.Sprintf(".*miner%d.*", i))
		case i < 20:
			p = pat("git", fmt.Sprintf("^https%%3A%%2F%%2Fgit%d.example.org%%2F.*", i))
		default:
			p = pat("gh", fmt.Sprintf("^banned-org-%d/repo.*", i))
		}
		bans = append(bans, Ban{Policy: fmt.Sprintf("RepoBan/binder/pattern-%d", i), Patterns: []Pattern{p}})
	}
	return NewBanIndex(bans)
}

func BenchmarkBanCheck10kBans(b *testing.B) {
	ix := banIndex10k(b)
	now := time.Now()
	cases := map[string]string{
		"allowed":     "gh/binder-examples/requirements/HEAD",
		"repo-banned": "gh/Owner-7/Repo-7/HEAD",
		"pattern-hit": "gh/banned-org-42/repository/HEAD",
		"git-allowed": "git/https%3A%2F%2Fgithub.com%2Fbinder-examples%2Fconda.git/HEAD",
	}
	for name, s := range cases {
		sp, err := spec.Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ix.Check(sp, now)
			}
		})
	}
}

// BenchmarkParseAndBanCheck10kBans includes parsing the spec, as the gate
// does per request.
func BenchmarkParseAndBanCheck10kBans(b *testing.B) {
	ix := banIndex10k(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		sp, err := spec.Parse("gh/binder-examples/requirements/HEAD")
		if err != nil {
			b.Fatal(err)
		}
		ix.Check(sp, now)
	}
}
