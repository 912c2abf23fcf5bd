package snapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/spec"
)

// Launch are the resolved launch settings for one spec.
type Launch struct {
	Policy   string     // "LaunchPolicy/<ns>/<name>" or "default"
	Mode     match.Mode // Enforce applies the settings; Warn and Audit only report
	Collapse Collapse
	Shed     Shed
	Breaker  Breaker
	Build    BuildLimits
	Stale    Stale
}

// Stale launches the last good commit of a ref while a newer one builds.
type Stale struct {
	Enabled bool
	MaxAge  time.Duration // how long after it was last seen ready a commit may still be launched
}

// Collapse holds repeat launches of a building spec behind one build.
type Collapse struct {
	Enabled      bool
	MaxWaiters   int           // held launches per spec
	HoldTimeout  time.Duration // longest hold
	ReleaseRate  float64       // released launches per second once built
	ReleaseBurst int
}

// Shed caps what is let through per spec and per client IP. 0 = no cap.
type Shed struct {
	MaxConcurrent int     // launches of one spec in flight to BinderHub
	ClientIPRate  float64 // launches per second per client IP
	ClientIPBurst int
}

// Breaker trips a spec whose builds keep failing or run too long.
type Breaker struct {
	ConsecutiveFailures int
	OpenDuration        time.Duration
	MaxBuildDuration    time.Duration
}

// BuildLimits bounds build pods (applied by the webhook).
type BuildLimits struct {
	Resources             corev1.ResourceRequirements
	ActiveDeadlineSeconds *int64
}

// Global are the site-wide caps.
type Global struct {
	MaxWaitersTotal    int
	MaxConcurrentTotal int
}

// Ban is one active RepoBan, as the xDS edge needs it.
type Ban struct {
	Policy  string     // "RepoBan/<ns>/<name>"
	Message string     // "" = BinderHub's wording, match.DefaultBanMessage(spec)
	Mode    match.Mode // Enforce, Warn or Audit
	Expires time.Time  // zero = never
	Repos   []spec.Repo
	// Prefixes are the canonical launch path prefixes of Repos, each ending
	// in "/" ("/build/gh/org/repo/", "/build/git/https%3A%2F%2Fgithub.com%2Forg%2Frepo/").
	// Only canonical spellings are listed; the gate catches every other.
	Prefixes []string
	Patterns []match.Pattern
}

// ObjectStatus says whether one policy object made it into the snapshot.
type ObjectStatus struct {
	Kind, Namespace, Name string
	Generation            int64
	Err                   *ObjectError // nil: accepted
	// Partial: the object is in force without the entries Err lists (a
	// RepoBan's repos or patterns binderguard cannot use).
	Partial bool
}

// Snapshot is an immutable view of every accepted policy.
type Snapshot struct {
	// Version is a content hash of the normalised policies.
	Version string

	bans     []Ban
	banIx    *match.BanIndex
	launches []Launch
	launchIx *match.LaunchIndex
	global   Global
	status   []ObjectStatus
}

// New builds a snapshot from policy objects. Invalid objects are left out;
// each yields an *ObjectError in the returned slice (and in Status).
func New(bans []v1alpha1.RepoBan, policies []v1alpha1.LaunchPolicy) (*Snapshot, []error) {
	s := &Snapshot{global: DefaultGlobal()}
	var errs []error
	// record notes obj's status and reports whether it was accepted.
	record := func(kind string, obj metav1.Object, fe field.ErrorList, partial bool) bool {
		st := ObjectStatus{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), Generation: obj.GetGeneration(), Partial: partial}
		if len(fe) > 0 {
			st.Err = &ObjectError{Kind: kind, Namespace: st.Namespace, Name: st.Name, Generation: st.Generation, Errs: fe}
			errs = append(errs, st.Err)
		}
		s.status = append(s.status, st)
		return st.Err == nil || partial
	}
	var mbans []match.Ban
	for i := range bans {
		rb := &bans[i]
		b, objErrs, entryErrs := validateRepoBan(rb)
		// A ban fails closed: entries binderguard cannot use (a repository
		// it cannot parse, a regex its engine refuses: the API server lets
		// them through) are left out, and the rest of the ban stays in
		// force, so one bad line added to a ban never lifts it.
		partial := len(objErrs) == 0 && len(entryErrs) > 0 && len(b.Repos)+len(b.Patterns) > 0
		if !record(v1alpha1.KindRepoBan, rb, append(objErrs, entryErrs...), partial) {
			continue
		}
		mbans = append(mbans, b)
		s.bans = append(s.bans, Ban{Policy: b.Policy, Message: b.Message, Mode: b.Mode, Expires: b.Expires,
			Repos: sortedRepos(b.Repos), Prefixes: prefixes(b.Repos), Patterns: b.Patterns})
	}
	slices.SortFunc(s.bans, func(a, b Ban) int { return cmp.Compare(a.Policy, b.Policy) })
	s.banIx = match.NewBanIndex(mbans)

	var cands []match.LaunchCandidate
	minCap := func(cur *int, v int) {
		if v > 0 && (*cur == 0 || v < *cur) {
			*cur = v
		}
	}
	var gw, gc int
	for i := range policies {
		lp := &policies[i]
		p, fe := validateLaunchPolicy(lp)
		if !record(v1alpha1.KindLaunchPolicy, lp, fe, false) {
			continue
		}
		cands = append(cands, p.cand)
		s.launches = append(s.launches, p.launch)
		if p.enforced { // Warn and Audit policies apply nothing, caps included
			minCap(&gw, p.maxWait)
			minCap(&gc, p.maxConc)
		}
	}
	if gw > 0 {
		s.global.MaxWaitersTotal = gw
	}
	if gc > 0 {
		s.global.MaxConcurrentTotal = gc
	}
	s.launchIx = match.NewLaunchIndex(cands)
	slices.SortFunc(s.status, func(a, b ObjectStatus) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	s.Version = s.hash(cands)
	return s, errs
}

// Empty is the snapshot with no policies: built-in defaults, no bans.
func Empty() *Snapshot {
	s, _ := New(nil, nil)
	return s
}

// Ban reports the ban that applies to a launch spec at now.
func (s *Snapshot) Ban(sp spec.Spec, now time.Time) (match.BanHit, bool) {
	return s.banIx.Check(sp, now)
}

// BanRepo reports the ban that applies to a repository at now (a pod's
// repo URL, parsed with spec.ParseRepoURL).
func (s *Snapshot) BanRepo(r spec.Repo, now time.Time) (match.BanHit, bool) {
	return s.banIx.CheckRepo(r, now)
}

// Bans lists the bans active at now, sorted by policy name.
func (s *Snapshot) Bans(now time.Time) []Ban {
	out := make([]Ban, 0, len(s.bans))
	for _, b := range s.bans {
		if b.Expires.IsZero() || now.Before(b.Expires) {
			out = append(out, b)
		}
	}
	return out
}

// NextExpiry is the earliest ban expiry after now, when Bans and Ban will
// next answer differently; zero when no ban is due to expire.
func (s *Snapshot) NextExpiry(now time.Time) time.Time {
	var next time.Time
	for _, b := range s.bans {
		if !b.Expires.IsZero() && b.Expires.After(now) && (next.IsZero() || b.Expires.Before(next)) {
			next = b.Expires
		}
	}
	return next
}

// Launch resolves the launch settings for a spec: the winning LaunchPolicy
// (see package match for precedence) over the built-in defaults.
func (s *Snapshot) Launch(sp spec.Spec) Launch {
	if pos, _, ok := s.launchIx.Select(sp); ok {
		return s.launches[pos]
	}
	return DefaultLaunch()
}

// LaunchRepo is Launch for a repository known without a spec.
func (s *Snapshot) LaunchRepo(r spec.Repo) Launch {
	if pos, _, ok := s.launchIx.SelectRepo(r); ok {
		return s.launches[pos]
	}
	return DefaultLaunch()
}

// Launches returns the settings of every accepted LaunchPolicy.
func (s *Snapshot) Launches() []Launch { return append([]Launch(nil), s.launches...) }

// Global returns the site-wide caps: the smallest value any accepted
// Enforce-mode LaunchPolicy sets, else the defaults.
func (s *Snapshot) Global() Global { return s.global }

// Status lists every object given to New, accepted or not, sorted by
// kind/namespace/name.
func (s *Snapshot) Status() []ObjectStatus { return append([]ObjectStatus(nil), s.status...) }

// Counts returns how many bans and launch policies were accepted.
func (s *Snapshot) Counts() (bans, launchPolicies int) { return len(s.bans), len(s.launches) }

func sortedRepos(in []spec.Repo) []spec.Repo {
	out := append([]spec.Repo(nil), in...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// prefixes lists canonical launch path prefixes for providers whose spec
// ends in "/<ref>", so that every ref of the repository is covered.
func prefixes(repos []spec.Repo) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range repos {
		for _, sp := range r.Spellings() {
			switch sp.Provider {
			case spec.ProviderGitHub, spec.ProviderGitLab, spec.ProviderGit:
				p := "/build/" + sp.Provider + "/" + sp.Text + "/"
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// hash is the content hash of what the snapshot decides, in a canonical
// order, plus each object's acceptance (so a status writer sees changes).
func (s *Snapshot) hash(cands []match.LaunchCandidate) string {
	type pat struct{ Provider, Regex string }
	type banN struct {
		Policy, Message, Mode, Expires string
		Repos                          []spec.Repo
		Patterns                       []pat
	}
	type launchN struct {
		Policy   string
		Priority int32
		Repos    []spec.Repo
		Patterns []pat
		Launch   Launch
	}
	pats := func(ps []match.Pattern) []pat {
		out := make([]pat, len(ps))
		for i, p := range ps {
			out[i] = pat{p.Provider, p.Regex.String()}
		}
		return out
	}
	var doc struct {
		Bans     []banN
		Launches []launchN
		Global   Global
		Status   []string
	}
	for _, b := range s.bans {
		exp := ""
		if !b.Expires.IsZero() {
			exp = b.Expires.UTC().Format(time.RFC3339Nano)
		}
		doc.Bans = append(doc.Bans, banN{b.Policy, b.Message, string(b.Mode), exp, b.Repos, pats(b.Patterns)})
	}
	for i, c := range cands {
		doc.Launches = append(doc.Launches, launchN{c.Policy, c.Priority, sortedRepos(c.Repos), pats(c.Patterns), s.launches[i]})
	}
	sort.Slice(doc.Launches, func(i, j int) bool { return doc.Launches[i].Policy < doc.Launches[j].Policy })
	doc.Global = s.global
	for _, st := range s.status {
		line := fmt.Sprintf("%s@%d", ref(st.Kind, st.Namespace, st.Name), st.Generation)
		if st.Err != nil {
			line += " invalid: " + st.Err.Errs.ToAggregate().Error()
		}
		doc.Status = append(doc.Status, line)
	}
	b, err := json.Marshal(doc)
	if err != nil { // plain data: cannot fail; keep a usable version anyway
		b = []byte(strings.Join(doc.Status, "\n"))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
