package match

import (
	"sort"
	"time"

	"github.com/binderguard/binderguard/policies/spec"
)

// Mode says what happens when a policy applies.
type Mode string

// Modes, as in the API.
const (
	ModeEnforce Mode = "Enforce" // refuse
	ModeWarn    Mode = "Warn"    // allow with a warning
	ModeAudit   Mode = "Audit"   // allow and record
)

// severity orders modes: lower is stronger.
func (m Mode) severity() int {
	switch m {
	case ModeWarn:
		return 1
	case ModeAudit:
		return 2
	default:
		return 0
	}
}

// BanHit says which ban applies and why.
type BanHit struct {
	Policy  string    // "RepoBan/<ns>/<name>"
	Rule    string    // the entry that matched: "repo github.com/o/r" or "pattern gh ^o/r.*"
	Message string    // for the user; never empty
	Mode    Mode      // Enforce, Warn or Audit
	Repo    spec.Repo // the repository that was checked
}

// Ban is one RepoBan, already validated: repositories parsed and patterns
// compiled (policies/snapshot does that and reports what fails).
type Ban struct {
	Policy   string // "RepoBan/<ns>/<name>"
	Message  string // "" = BinderHub's own wording
	Mode     Mode   // "" = Enforce
	Expires  time.Time
	Repos    []spec.Repo
	Patterns []Pattern
}

// Active reports whether the ban applies at now.
func (b *Ban) Active(now time.Time) bool { return b.Expires.IsZero() || now.Before(b.Expires) }

// BanIndex answers "is this spec banned" in O(1) for repository entries plus
// a prefix-filtered pass over patterns. It is immutable and safe for
// concurrent use.
type BanIndex struct {
	bans      []Ban
	selectors // owner ids are ban ids
}

// NewBanIndex builds the index. Bans are copied; the caller keeps its slice.
func NewBanIndex(bans []Ban) *BanIndex {
	ix := &BanIndex{bans: append([]Ban(nil), bans...)}
	for i := range ix.bans {
		if ix.bans[i].Mode == "" {
			ix.bans[i].Mode = ModeEnforce
		}
	}
	// precedence: strongest mode, then policy name
	order := make([]int, len(ix.bans))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &ix.bans[order[a]], &ix.bans[order[b]]
		if sx, sy := x.Mode.severity(), y.Mode.severity(); sx != sy {
			return sx < sy
		}
		return x.Policy < y.Policy
	})
	ix.selectors = newSelectors(order, func(id int) ([]spec.Repo, []Pattern) {
		return ix.bans[id].Repos, ix.bans[id].Patterns
	})
	return ix
}

// Len is the number of bans in the index.
func (ix *BanIndex) Len() int { return len(ix.bans) }

// Check reports the ban that applies to sp at now, if any.
func (ix *BanIndex) Check(sp spec.Spec, now time.Time) (BanHit, bool) {
	return ix.check(sp.Repo, sp.Raw, sp.Spellings, now)
}

// CheckRepo reports the ban that applies to a repository known without a
// spec (a pod's repo URL). Patterns are matched against the repository's
// canonical spellings without a ref.
func (ix *BanIndex) CheckRepo(r spec.Repo, now time.Time) (BanHit, bool) {
	return ix.check(r, string(r), r.Spellings, now)
}

// check takes the spellings lazily: an Enforce repository hit needs none.
func (ix *BanIndex) check(repo spec.Repo, display string, spellings func() []spec.Spelling, now time.Time) (BanHit, bool) {
	if ix == nil {
		return BanHit{}, false
	}
	exactBan := -1
	for _, id := range ix.exact[repo] {
		if ix.bans[id].Active(now) {
			exactBan = id
			break
		}
	}
	// An Enforce repository entry cannot be beaten by a pattern.
	if exactBan >= 0 && ix.bans[exactBan].Mode == ModeEnforce {
		return ix.hit(exactBan, "repo "+string(repo), repo, display), true
	}
	if ix.patterns.len() == 0 {
		if exactBan >= 0 {
			return ix.hit(exactBan, "repo "+string(repo), repo, display), true
		}
		return BanHit{}, false
	}
	pid := ix.patterns.best(spellings(), func(id int) bool {
		b := &ix.bans[ix.owner[id]]
		if exactBan >= 0 && b.Mode.severity() >= ix.bans[exactBan].Mode.severity() {
			return false // the repository entry wins ties
		}
		return b.Active(now)
	})
	switch {
	case pid >= 0:
		return ix.hit(ix.owner[pid], "pattern "+ix.patterns.entries[pid].pattern.String(), repo, display), true
	case exactBan >= 0:
		return ix.hit(exactBan, "repo "+string(repo), repo, display), true
	}
	return BanHit{}, false
}

func (ix *BanIndex) hit(id int, rule string, repo spec.Repo, display string) BanHit {
	b := &ix.bans[id]
	msg := b.Message
	if msg == "" {
		msg = DefaultBanMessage(display)
	}
	return BanHit{Policy: b.Policy, Rule: rule, Message: msg, Mode: b.Mode, Repo: repo}
}

// DefaultBanMessage is BinderHub's own wording for a banned spec, with
// the spec cut to 200 bytes: the message echoes what the client sent.
func DefaultBanMessage(s string) string {
	return "Sorry, " + spec.Shown(s, 200) + " is not allowed to launch. Please contact admins for more info!"
}
