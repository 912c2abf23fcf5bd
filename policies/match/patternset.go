package match

import (
	"sort"
	"strings"

	"github.com/binderguard/binderguard/policies/spec"
)

// Pattern is a regex, optionally scoped to one provider, as a RepoBan or
// LaunchPolicy selector writes it.
type Pattern struct {
	Provider string // "" = every provider
	Regex    *Regex
}

// String is "<provider> <regex>" or "* <regex>".
func (p Pattern) String() string {
	prov := p.Provider
	if prov == "" {
		prov = "*"
	}
	return prov + " " + p.Regex.String()
}

// patternSet finds, among many patterns, the one with the lowest order
// number that matches any spelling. Patterns are bucketed by the length of
// their folded literal prefix; a check looks up each bucket once per
// spelling, so its cost grows with the number of distinct prefix lengths
// (at most maxPrefix) plus the patterns that share the text's prefix, not
// with the number of patterns.
type patternSet struct {
	entries []patternEntry
	lengths []int                    // distinct prefix lengths > 0, ascending
	byPref  map[int]map[string][]int // length -> prefix -> entry ids, ascending
	always  []int                    // entries without a prefix, ascending
}

// selectors indexes what bans and launch candidates both select by:
// repository entries and patterns, each leading back to its owner's id,
// both in precedence order.
type selectors struct {
	exact    map[spec.Repo][]int // owner ids in precedence order
	patterns *patternSet         // entry order = precedence order
	owner    []int               // pattern entry id -> owner id
}

// newSelectors indexes the owners in order (strongest first); sel gives
// each owner's repositories and patterns.
func newSelectors(order []int, sel func(id int) ([]spec.Repo, []Pattern)) selectors {
	s := selectors{exact: map[spec.Repo][]int{}}
	var entries []patternEntry
	for _, id := range order {
		repos, pats := sel(id)
		for _, r := range repos {
			if l := s.exact[r]; len(l) == 0 || l[len(l)-1] != id {
				s.exact[r] = append(l, id)
			}
		}
		for _, p := range pats {
			// entries are appended in precedence order, so the index is the order
			entries = append(entries, patternEntry{pattern: p, order: len(entries)})
			s.owner = append(s.owner, id)
		}
	}
	s.patterns = newPatternSet(entries)
	return s
}

type patternEntry struct {
	pattern Pattern
	order   int // lower wins
}

func newPatternSet(entries []patternEntry) *patternSet {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].order < entries[j].order })
	ps := &patternSet{entries: entries, byPref: map[int]map[string][]int{}}
	for id, e := range entries {
		p := e.pattern.Regex.prefix
		if p == "" {
			ps.always = append(ps.always, id)
			continue
		}
		m := ps.byPref[len(p)]
		if m == nil {
			m = map[string][]int{}
			ps.byPref[len(p)] = m
			ps.lengths = append(ps.lengths, len(p))
		}
		m[p] = append(m[p], id)
	}
	sort.Ints(ps.lengths)
	return ps
}

// best returns the id of the matching entry with the lowest order for which
// accept is true, or -1. Ids are ascending in order, so a candidate can be
// skipped as soon as its id is not below the best found so far.
func (ps *patternSet) best(spellings []spec.Spelling, accept func(id int) bool) int {
	if ps == nil || len(ps.entries) == 0 {
		return -1
	}
	best := -1
	try := func(id int, sp spec.Spelling) {
		if best >= 0 && id >= best {
			return
		}
		e := &ps.entries[id]
		if e.pattern.Provider != "" && e.pattern.Provider != sp.Provider {
			return
		}
		if accept != nil && !accept(id) {
			return
		}
		if e.pattern.Regex.MatchString(sp.Text) {
			best = id
		}
	}
	for _, sp := range spellings {
		folded := fold(sp.Text)
		for _, n := range ps.lengths {
			if n > len(folded) {
				break
			}
			for _, id := range ps.byPref[n][folded[:n]] {
				try(id, sp)
			}
		}
		for _, id := range ps.always {
			if best >= 0 && id >= best {
				break
			}
			// a literal the pattern must contain is a cheap test before the regex
			if n := ps.entries[id].pattern.Regex.needle; n != "" && !strings.Contains(folded, n) {
				continue
			}
			try(id, sp)
		}
	}
	return best
}

func (ps *patternSet) len() int {
	if ps == nil {
		return 0
	}
	return len(ps.entries)
}
