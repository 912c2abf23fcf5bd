package evaluate

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Rule names of the build limits; ban rules come from the RepoBan.
const (
	RuleBuildResources = "build-resources"
	RuleBuildDeadline  = "build-deadline"
)

// MaxWarning is the longest admission warning returned: kubectl and
// BinderHub's log show it on one line.
const MaxWarning = 119

// Verdict is the outcome of admission for one pod. Allowed is false only
// when an Enforce-mode finding matched; Policy, Rule and Repo then name the
// first such finding and Reason carries all of them.
type Verdict struct {
	Allowed  bool                  `json:"allowed"`
	Reason   string                `json:"reason"`
	Policy   string                `json:"policy,omitempty"`
	Rule     string                `json:"rule,omitempty"`
	Repo     string                `json:"repo,omitempty"`
	Kind     Kind                  `json:"kind"`
	Warnings []string              `json:"warnings,omitempty"`
	Findings []Finding             `json:"findings,omitempty"`
	Patch    []jsonpatch.Operation `json:"patch"`
}

// Finding is one policy rule that matched a pod, in any mode.
type Finding struct {
	Policy  string          `json:"policy"`
	Rule    string          `json:"rule"`
	Mode    Mode            `json:"mode"`
	Repo    string          `json:"repo,omitempty"`
	Message string          `json:"message"`
	Errors  field.ErrorList `json:"-"`
	short   string
}

// Mutate is the mutating webhook's decision: always allowed; for a build
// pod under an Enforce-mode LaunchPolicy, the JSON patch (sorted by path,
// only what changes) that sets and clamps its resources and deadline. The
// pod is not modified.
func Mutate(pod *corev1.Pod, pols Policies) Verdict {
	v, _ := mutate(pod, pols)
	return v
}

// mutate is Mutate that also returns the mutated pod (pod itself when
// nothing changes), so Evaluate validates it without mutating twice.
func mutate(pod *corev1.Pod, pols Policies) (Verdict, *corev1.Pod) {
	f := Read(pod)
	v := Verdict{Allowed: true, Kind: f.Kind, Reason: "no change", Patch: []jsonpatch.Operation{}}
	if f.Kind != KindBuild {
		v.Reason = "not a build pod"
		return v, pod
	}
	b := pols.BuildFor(f.RepoURL)
	v.Policy, v.Repo = b.Policy, f.RepoURL
	if b.Mode != ModeEnforce && b.Mode != "" {
		v.Reason = fmt.Sprintf("%s is in %s mode: not mutated", b.Policy, b.Mode)
		return v, pod
	}
	out := pod.DeepCopy()
	MutateBuild(out, b)
	v.Patch = buildPatch(pod, out)
	if len(v.Patch) > 0 {
		v.Reason = fmt.Sprintf("build limits set by %s", b.Policy)
	}
	return v, out
}

// Validate is the validating webhook's decision for a pod being created:
// bans on the repository for build and user pods, and the build limits
// (checked on the final, mutated state) for build pods.
func Validate(pod *corev1.Pod, pols Policies) Verdict {
	f := Read(pod)
	var fs []Finding
	var warns []string
	switch f.Kind {
	case KindOther:
		return Verdict{Allowed: true, Kind: f.Kind, Reason: "not a binder pod", Patch: []jsonpatch.Operation{}}
	case KindBuild:
		fs, warns = bans(f, pols)
		b := pols.BuildFor(f.RepoURL)
		fs = append(fs, buildFindings(f, b, ValidateBuild(pod, b))...)
	case KindUser:
		fs, warns = bans(f, pols)
	}
	return decide(f, fs, warns)
}

// ValidateResize is the validating webhook's decision for an in-place
// resize of a pod: a build pod may not be resized above its maxima.
func ValidateResize(pod *corev1.Pod, pols Policies) Verdict {
	f := Read(pod)
	if f.Kind != KindBuild {
		return Verdict{Allowed: true, Kind: f.Kind, Reason: "not a build pod", Patch: []jsonpatch.Operation{}}
	}
	b := pols.BuildFor(f.RepoURL)
	return decide(f, buildFindings(f, b, ValidateResizeErrors(pod, b)), nil)
}

// Evaluate is what the API server would do with a new pod: mutate, then
// validate the mutated pod. It backs `binderguard policy test -f`.
func Evaluate(pod *corev1.Pod, pols Policies) Verdict {
	m, mutated := mutate(pod, pols)
	v := Validate(mutated, pols)
	v.Patch = m.Patch
	if v.Allowed && len(m.Patch) > 0 {
		v.Reason = m.Reason
		v.Policy = m.Policy
	}
	return v
}

// bans checks every repository source of a pod against the bans. A source
// that cannot be read as a repository gives a warning, not a denial: bans
// are on repositories, and a value no parser accepts names none.
func bans(f Facts, pols Policies) ([]Finding, []string) {
	var out []Finding
	var warns []string
	byBan := map[string]int{}
	for _, s := range f.Sources {
		var ban Ban
		var hit bool
		var err error
		if s.Kind == SourceRequest {
			ban, hit, err = pols.BanRequest(s.Value)
		} else {
			ban, hit, err = pols.BanURL(s.Value)
		}
		if err != nil {
			warns = append(warns, fmt.Sprintf("binderguard: %s is not a repository: %v", s.Field, err))
			continue
		}
		if !hit {
			continue
		}
		e := field.Forbidden(s.Field, fmt.Sprintf("repository %s is banned", ban.Repo))
		key := ban.Policy + "\x00" + ban.Rule + "\x00" + ban.Repo
		if i, ok := byBan[key]; ok {
			out[i].Errors = append(out[i].Errors, e)
			continue
		}
		byBan[key] = len(out)
		msg := fmt.Sprintf("%s of repository %s is banned by %s (rule %q)", podNoun(f.Kind), ban.Repo, ban.Policy, ban.Rule)
		if m := strings.TrimSpace(ban.Message); m != "" {
			msg += ": " + m
		}
		out = append(out, Finding{
			Policy: ban.Policy, Rule: ban.Rule, Mode: modeOr(ban.Mode), Repo: ban.Repo,
			Message: msg, Errors: field.ErrorList{e},
			short: fmt.Sprintf("%s banned by %s", ban.Repo, ban.Policy),
		})
	}
	return out, warns
}

// buildFindings groups build-limit errors into one finding per rule.
func buildFindings(f Facts, b BuildPolicy, errs field.ErrorList) []Finding {
	var res, dl field.ErrorList
	for _, e := range errs {
		if e.Field == "spec.activeDeadlineSeconds" {
			dl = append(dl, e)
		} else {
			res = append(res, e)
		}
	}
	repo := f.RepoURL
	if repo == "" {
		repo = "(unknown repository)"
	}
	var out []Finding
	for _, g := range []struct {
		rule, what string
		errs       field.ErrorList
	}{{RuleBuildResources, "resources", res}, {RuleBuildDeadline, "deadline", dl}} {
		if len(g.errs) == 0 {
			continue
		}
		out = append(out, Finding{
			Policy: b.Policy, Rule: g.rule, Mode: modeOr(b.Mode), Repo: f.RepoURL, Errors: g.errs,
			Message: fmt.Sprintf("build pod of repository %s breaks %s (rule %q): %s", repo, b.Policy, g.rule, g.errs.ToAggregate().Error()),
			short:   fmt.Sprintf("build %s outside %s", g.what, b.Policy),
		})
	}
	return out
}

// decide turns findings into a verdict according to each finding's mode.
func decide(f Facts, fs []Finding, warns []string) Verdict {
	v := Verdict{Allowed: true, Kind: f.Kind, Findings: fs, Patch: []jsonpatch.Operation{}, Reason: "no policy applies"}
	var denials []string
	for _, x := range fs {
		switch x.Mode {
		case ModeEnforce:
			if len(denials) == 0 {
				v.Policy, v.Rule, v.Repo = x.Policy, x.Rule, x.Repo
			}
			denials = append(denials, x.Message)
		case ModeWarn:
			warns = append(warns, "binderguard: "+x.short)
		case ModeAudit:
			// recorded by the handler (metric and Event); nothing for the client
		}
	}
	for i, w := range warns {
		warns[i] = Truncate(w, MaxWarning)
	}
	v.Warnings = warns
	if len(denials) > 0 {
		v.Allowed = false
		v.Reason = "binderguard: " + strings.Join(denials, "; ")
	} else if len(fs) > 0 {
		v.Reason = "allowed: matching policies are not enforced"
	}
	return v
}

// Truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func podNoun(k Kind) string {
	if k == KindBuild {
		return "build pod"
	}
	return "user pod"
}

func modeOr(m Mode) Mode {
	if m == "" {
		return ModeEnforce
	}
	return m
}
