package match

import (
	"sort"

	"github.com/binderguard/binderguard/policies/spec"
)

// Specificity says how a launch policy selected a spec; lower is more specific.
type Specificity int

// Specificities, most specific first.
const (
	ByRepo     Specificity = iota // a repository entry in the selector
	ByPattern                     // a pattern in the selector
	ByCatchAll                    // an empty selector
)

func (s Specificity) String() string {
	switch s {
	case ByRepo:
		return "repo"
	case ByPattern:
		return "pattern"
	default:
		return "catch-all"
	}
}

// LaunchCandidate is one LaunchPolicy's selector, already validated.
type LaunchCandidate struct {
	Policy   string // "LaunchPolicy/<ns>/<name>"
	Priority int32  // higher wins among equally specific selectors
	Repos    []spec.Repo
	Patterns []Pattern
}

// CatchAll reports whether the selector is empty (selects every spec).
func (c *LaunchCandidate) CatchAll() bool { return len(c.Repos) == 0 && len(c.Patterns) == 0 }

// LaunchIndex picks the launch policy for a spec. Immutable, safe for
// concurrent use.
type LaunchIndex struct {
	cands    []LaunchCandidate
	exact    map[spec.Repo][]int // candidate ids, best first
	patterns *patternSet
	patCand  []int // pattern entry id -> candidate id
	catchAll []int // candidate ids, best first
}

// NewLaunchIndex builds the index; Select returns positions in cands.
func NewLaunchIndex(cands []LaunchCandidate) *LaunchIndex {
	ix := &LaunchIndex{cands: append([]LaunchCandidate(nil), cands...), exact: map[spec.Repo][]int{}}
	order := make([]int, len(ix.cands))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &ix.cands[order[a]], &ix.cands[order[b]]
		if x.Priority != y.Priority {
			return x.Priority > y.Priority
		}
		return x.Policy < y.Policy
	})
	var entries []patternEntry
	for _, id := range order {
		c := &ix.cands[id]
		if c.CatchAll() {
			ix.catchAll = append(ix.catchAll, id)
			continue
		}
		for _, r := range c.Repos {
			if l := ix.exact[r]; len(l) == 0 || l[len(l)-1] != id {
				ix.exact[r] = append(l, id)
			}
		}
		for _, p := range c.Patterns {
			entries = append(entries, patternEntry{pattern: p, order: len(entries)})
			ix.patCand = append(ix.patCand, id)
		}
	}
	ix.patterns = newPatternSet(entries)
	return ix
}

// Select returns the position (in the slice given to NewLaunchIndex) of the
// policy that applies to sp and how it was selected; ok is false when no
// policy selects it.
func (ix *LaunchIndex) Select(sp spec.Spec) (pos int, how Specificity, ok bool) {
	return ix.sel(sp.Repo, sp.Spellings())
}

// SelectRepo is Select for a repository known without a spec.
func (ix *LaunchIndex) SelectRepo(r spec.Repo) (pos int, how Specificity, ok bool) {
	return ix.sel(r, r.Spellings())
}

func (ix *LaunchIndex) sel(r spec.Repo, spellings []spec.Spelling) (int, Specificity, bool) {
	if ix == nil {
		return 0, 0, false
	}
	if l := ix.exact[r]; len(l) > 0 {
		return l[0], ByRepo, true
	}
	if pid := ix.patterns.best(spellings, nil); pid >= 0 {
		return ix.patCand[pid], ByPattern, true
	}
	if len(ix.catchAll) > 0 {
		return ix.catchAll[0], ByCatchAll, true
	}
	return 0, 0, false
}
