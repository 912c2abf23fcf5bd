package snapshot

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/spec"
)

// ObjectError says why one policy object was left out of a snapshot.
type ObjectError struct {
	Kind       string // "RepoBan" or "LaunchPolicy"
	Namespace  string
	Name       string
	Generation int64 // metadata.generation that was validated
	Errs       field.ErrorList
}

// Ref is "<kind>/<namespace>/<name>", as policies are named in verdicts.
func (e *ObjectError) Ref() string { return ref(e.Kind, e.Namespace, e.Name) }

func (e *ObjectError) Error() string {
	return e.Ref() + ": " + e.Errs.ToAggregate().Error()
}

func ref(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

// Limits the CRD schema sets; kept equal so that local mode refuses what
// the API server would.
const (
	maxRepos          = 1024
	maxPatterns       = 256
	maxRepoRefLen     = 512
	minRepoRefLen     = 4
	maxRegexLen       = 256
	maxMessageLen     = 1024
	maxPriority       = 1000
	maxCount          = 1_000_000
	maxBurst          = 100_000
	maxFailures       = 1000
	maxDeadlineSecond = 604800
)

func validateMeta(m *metav1.ObjectMeta) field.ErrorList {
	if m.Name == "" {
		return field.ErrorList{field.Required(field.NewPath("metadata", "name"), "every policy needs a name")}
	}
	return nil
}

func validateMode(p *field.Path, m v1alpha1.Mode) (match.Mode, field.ErrorList) {
	switch m {
	case "", v1alpha1.ModeEnforce:
		return match.ModeEnforce, nil
	case v1alpha1.ModeWarn:
		return match.ModeWarn, nil
	case v1alpha1.ModeAudit:
		return match.ModeAudit, nil
	}
	return "", field.ErrorList{field.NotSupported(p, m, []string{"Enforce", "Warn", "Audit"})}
}

// repos parses a RepoRef list to identities, refusing duplicates as the
// schema's listType=set does.
func repos(p *field.Path, in []v1alpha1.RepoRef) ([]spec.Repo, field.ErrorList) {
	var errs field.ErrorList
	if len(in) > maxRepos {
		errs = append(errs, field.TooMany(p, len(in), maxRepos))
	}
	seen := map[v1alpha1.RepoRef]bool{}
	out := make([]spec.Repo, 0, len(in))
	for i, r := range in {
		fp := p.Index(i)
		switch {
		case seen[r]:
			errs = append(errs, field.Duplicate(fp, r))
			continue
		case len(r) < minRepoRefLen || len(r) > maxRepoRefLen:
			errs = append(errs, field.Invalid(fp, r, fmt.Sprintf("must be %d to %d characters", minRepoRefLen, maxRepoRefLen)))
			continue
		}
		seen[r] = true
		provider, _, _ := cutSlash(string(r))
		if !spec.KnownProvider(provider) {
			errs = append(errs, field.Invalid(fp, r, "must be <provider>/<spec> with provider one of gh, gist, git, gl, zenodo, figshare, hydroshare, dataverse, ckan"))
			continue
		}
		id, err := spec.ParseRepo(string(r))
		if err != nil {
			errs = append(errs, field.Invalid(fp, r, err.Error()))
			continue
		}
		out = append(out, id)
	}
	return out, errs
}

func cutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func patterns(p *field.Path, in []v1alpha1.SpecPattern) ([]match.Pattern, field.ErrorList) {
	var errs field.ErrorList
	if len(in) > maxPatterns {
		errs = append(errs, field.TooMany(p, len(in), maxPatterns))
	}
	out := make([]match.Pattern, 0, len(in))
	for i, sp := range in {
		fp := p.Index(i)
		if sp.Provider != "" && !spec.KnownProvider(string(sp.Provider)) {
			errs = append(errs, field.NotSupported(fp.Child("provider"), sp.Provider, spec.Providers()))
			continue
		}
		if len(sp.Regex) == 0 || len(sp.Regex) > maxRegexLen {
			errs = append(errs, field.Invalid(fp.Child("regex"), sp.Regex, fmt.Sprintf("must be 1 to %d characters", maxRegexLen)))
			continue
		}
		re, err := match.CompileRegex(string(sp.Regex))
		if err != nil {
			errs = append(errs, field.Invalid(fp.Child("regex"), sp.Regex, err.Error()))
			continue
		}
		// The API server's CEL rule compiles the pattern as it is written;
		// refuse here what it refuses, so local mode and the cluster agree.
		if _, err := regexp.Compile(string(sp.Regex)); err != nil {
			msg := "must be a valid RE2 regular expression: " + err.Error()
			if strings.Contains(string(sp.Regex), `\Z`) {
				msg += ` (write \z for Python's \Z)`
			}
			errs = append(errs, field.Invalid(fp.Child("regex"), sp.Regex, msg))
			continue
		}
		out = append(out, match.Pattern{Provider: string(sp.Provider), Regex: re})
	}
	return out, errs
}

func positiveDuration(p *field.Path, d *metav1.Duration) (time.Duration, field.ErrorList) {
	if d == nil {
		return 0, nil
	}
	if d.Duration <= 0 {
		return 0, field.ErrorList{field.Invalid(p, d.Duration.String(), "must be a positive duration")}
	}
	return d.Duration, nil
}

func positiveQuantity(p *field.Path, q *resource.Quantity) (float64, field.ErrorList) {
	if q == nil {
		return 0, nil
	}
	if q.Sign() <= 0 {
		return 0, field.ErrorList{field.Invalid(p, q.String(), "must be a positive quantity")}
	}
	return q.AsApproximateFloat64(), nil
}

func int32In(p *field.Path, v *int32, lo, hi int32) field.ErrorList {
	if v != nil && (*v < lo || *v > hi) {
		return field.ErrorList{field.Invalid(p, *v, fmt.Sprintf("must be between %d and %d", lo, hi))}
	}
	return nil
}
