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
	cands     []LaunchCandidate
	selectors       // owner ids are candidate ids
	catchAll  []int // candidate ids, best first
}

// NewLaunchIndex builds the index; Select returns positions in cands.
func NewLaunchIndex(cands []LaunchCandidate) *LaunchIndex {
	ix := &LaunchIndex{cands: append([]LaunchCandidate(nil), cands...)}
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
	for _, id := range order {
		if ix.cands[id].CatchAll() {
			ix.catchAll = append(ix.catchAll, id)
		}
	}
	// a catch-all candidate has neither repositories nor patterns to index
	ix.selectors = newSelectors(order, func(id int) ([]spec.Repo, []Pattern) {
		return ix.cands[id].Repos, ix.cands[id].Patterns
	})
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
		return ix.owner[pid], ByPattern, true
	}
	if len(ix.catchAll) > 0 {
		return ix.catchAll[0], ByCatchAll, true
	}
	return 0, 0, false
}
