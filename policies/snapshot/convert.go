package snapshot

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/match"
)

// ValidateRepoBan checks a RepoBan the way the CRD's schema and CEL rules
// do, plus what only binderguard can tell (repositories parse, regexes
// compile for its engine). It returns the ban ready for the index.
func ValidateRepoBan(rb *v1alpha1.RepoBan) (match.Ban, field.ErrorList) {
	b, objErrs, entryErrs := validateRepoBan(rb)
	return b, append(objErrs, entryErrs...)
}

// validateRepoBan is ValidateRepoBan with the errors of single entries of
// spec.repos and spec.patterns apart from the object's: b holds the
// entries that are valid.
func validateRepoBan(rb *v1alpha1.RepoBan) (b match.Ban, objErrs, entryErrs field.ErrorList) {
	errs := validateMeta(&rb.ObjectMeta)
	sp := field.NewPath("spec")
	b = match.Ban{
		Policy:  ref(v1alpha1.KindRepoBan, rb.Namespace, rb.Name),
		Message: rb.Spec.Message,
	}
	var e field.ErrorList
	b.Repos, e = repos(sp.Child("repos"), rb.Spec.Repos)
	errs = append(errs, e...)
	b.Patterns, e = patterns(sp.Child("patterns"), rb.Spec.Patterns)
	errs = append(errs, e...)
	if len(rb.Spec.Repos) == 0 && len(rb.Spec.Patterns) == 0 {
		errs = append(errs, field.Required(sp, "at least one of repos or patterns must be set"))
	}
	if len(rb.Spec.Message) > maxMessageLen {
		errs = append(errs, field.TooLong(sp.Child("message"), "", maxMessageLen))
	}
	b.Mode, e = validateMode(sp.Child("mode"), rb.Spec.Mode)
	errs = append(errs, e...)
	switch rb.Spec.OnExisting {
	case "", v1alpha1.OnExistingIgnore, v1alpha1.OnExistingReport:
	case v1alpha1.OnExistingDelete:
		if b.Mode != match.ModeEnforce {
			errs = append(errs, field.Invalid(sp.Child("onExisting"), rb.Spec.OnExisting, "onExisting: Delete requires mode: Enforce"))
		}
	default:
		errs = append(errs, field.NotSupported(sp.Child("onExisting"), rb.Spec.OnExisting, []string{"Ignore", "Report", "Delete"}))
	}
	if rb.Spec.Expires != nil {
		b.Expires = rb.Spec.Expires.Time
	}
	for _, err := range errs {
		if strings.HasPrefix(err.Field, "spec.repos[") || strings.HasPrefix(err.Field, "spec.patterns[") {
			entryErrs = append(entryErrs, err)
		} else {
			objErrs = append(objErrs, err)
		}
	}
	return b, objErrs, entryErrs
}

// launchPolicy is a validated LaunchPolicy: its selector and its resolved
// settings, plus the site-wide caps it sets (0 = unset).
type launchPolicy struct {
	cand     match.LaunchCandidate
	launch   Launch
	maxWait  int
	maxConc  int
	enforced bool
}

// ValidateLaunchPolicy checks a LaunchPolicy like the CRD does and resolves
// its settings over DefaultLaunch.
func ValidateLaunchPolicy(lp *v1alpha1.LaunchPolicy) (Launch, field.ErrorList) {
	p, errs := validateLaunchPolicy(lp)
	return p.launch, errs
}

func validateLaunchPolicy(lp *v1alpha1.LaunchPolicy) (launchPolicy, field.ErrorList) {
	errs := validateMeta(&lp.ObjectMeta)
	s := &lp.Spec
	sp := field.NewPath("spec")
	name := ref(v1alpha1.KindLaunchPolicy, lp.Namespace, lp.Name)
	out := launchPolicy{cand: match.LaunchCandidate{Policy: name, Priority: s.Priority}, launch: DefaultLaunch()}
	l := &out.launch
	l.Policy = name

	var e field.ErrorList
	sel := sp.Child("selector")
	out.cand.Repos, e = repos(sel.Child("repos"), s.Selector.Repos)
	errs = append(errs, e...)
	out.cand.Patterns, e = patterns(sel.Child("patterns"), s.Selector.Patterns)
	errs = append(errs, e...)
	if s.Priority < -maxPriority || s.Priority > maxPriority {
		errs = append(errs, field.Invalid(sp.Child("priority"), s.Priority, "must be between -1000 and 1000"))
	}
	l.Mode, e = validateMode(sp.Child("mode"), s.Mode)
	errs = append(errs, e...)
	out.enforced = l.Mode == match.ModeEnforce

	if c := s.Collapse; c != nil {
		p := sp.Child("collapse")
		if c.Enabled != nil {
			l.Collapse.Enabled = *c.Enabled
		}
		errs = append(errs, int32In(p.Child("maxWaiters"), c.MaxWaiters, 1, maxCount)...)
		setInt(&l.Collapse.MaxWaiters, c.MaxWaiters)
		errs = append(errs, setDuration(&l.Collapse.HoldTimeout, p.Child("holdTimeout"), c.HoldTimeout)...)
		errs = append(errs, setRate(&l.Collapse.ReleaseRate, p.Child("releaseRate"), c.ReleaseRate)...)
		errs = append(errs, int32In(p.Child("releaseBurst"), c.ReleaseBurst, 1, maxBurst)...)
		setInt(&l.Collapse.ReleaseBurst, c.ReleaseBurst)
		if c.ReleaseBurst != nil && c.ReleaseRate == nil {
			errs = append(errs, field.Required(p.Child("releaseRate"), "releaseBurst requires releaseRate"))
		}
	}
	if sh := s.Shed; sh != nil {
		p := sp.Child("shed")
		errs = append(errs, int32In(p.Child("maxConcurrentPerSpec"), sh.MaxConcurrentPerSpec, 1, maxCount)...)
		errs = append(errs, int32In(p.Child("maxConcurrentTotal"), sh.MaxConcurrentTotal, 1, maxCount)...)
		errs = append(errs, int32In(p.Child("maxWaitersTotal"), sh.MaxWaitersTotal, 1, maxCount)...)
		errs = append(errs, int32In(p.Child("clientIPBurst"), sh.ClientIPBurst, 1, maxBurst)...)
		setInt(&l.Shed.MaxConcurrent, sh.MaxConcurrentPerSpec)
		setInt(&out.maxConc, sh.MaxConcurrentTotal)
		setInt(&out.maxWait, sh.MaxWaitersTotal)
		errs = append(errs, setRate(&l.Shed.ClientIPRate, p.Child("clientIPRate"), sh.ClientIPRate)...)
		setInt(&l.Shed.ClientIPBurst, sh.ClientIPBurst)
		if sh.ClientIPBurst != nil && sh.ClientIPRate == nil {
			errs = append(errs, field.Required(p.Child("clientIPRate"), "clientIPBurst requires clientIPRate"))
		}
		if sh.ClientIPRate != nil && (len(s.Selector.Repos) > 0 || len(s.Selector.Patterns) > 0) {
			errs = append(errs, field.Forbidden(p.Child("clientIPRate"), "shed.clientIPRate is enforced site-wide by Envoy's one launch route: set it on a LaunchPolicy with an empty selector"))
		}
		if sh.ClientIPRate != nil && sh.ClientIPBurst == nil {
			l.Shed.ClientIPBurst = max(1, int(l.Shed.ClientIPRate+0.5)) // one second's worth
		}
		if sh.MaxConcurrentPerSpec != nil && sh.MaxConcurrentTotal != nil && *sh.MaxConcurrentPerSpec > *sh.MaxConcurrentTotal {
			errs = append(errs, field.Invalid(p.Child("maxConcurrentPerSpec"), *sh.MaxConcurrentPerSpec, "maxConcurrentPerSpec must not exceed maxConcurrentTotal"))
		}
		if s.Collapse != nil && s.Collapse.MaxWaiters != nil && sh.MaxWaitersTotal != nil && *s.Collapse.MaxWaiters > *sh.MaxWaitersTotal {
			errs = append(errs, field.Invalid(sp.Child("collapse", "maxWaiters"), *s.Collapse.MaxWaiters, "collapse.maxWaiters must not exceed shed.maxWaitersTotal"))
		}
	}
	if b := s.Breaker; b != nil {
		p := sp.Child("breaker")
		errs = append(errs, int32In(p.Child("consecutiveFailures"), b.ConsecutiveFailures, 1, maxFailures)...)
		setInt(&l.Breaker.ConsecutiveFailures, b.ConsecutiveFailures)
		errs = append(errs, setDuration(&l.Breaker.OpenDuration, p.Child("openDuration"), b.OpenDuration)...)
		errs = append(errs, setDuration(&l.Breaker.MaxBuildDuration, p.Child("maxBuildDuration"), b.MaxBuildDuration)...)
	}
	if st := s.StaleWhileBuilding; st != nil {
		p := sp.Child("staleWhileBuilding")
		if st.Enabled != nil {
			l.Stale.Enabled = *st.Enabled
		}
		errs = append(errs, setDuration(&l.Stale.MaxAge, p.Child("maxAge"), st.MaxAge)...)
	}
	if b := s.Build; b != nil {
		p := sp.Child("build")
		if b.Resources != nil {
			errs = append(errs, validateResources(p.Child("resources"), b.Resources)...)
			l.Build.Resources = *b.Resources.DeepCopy()
		}
		if d := b.ActiveDeadlineSeconds; d != nil {
			if *d < 1 || *d > maxDeadlineSecond {
				errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *d, "must be between 1 and 604800"))
			}
			v := *d
			l.Build.ActiveDeadlineSeconds = &v
		}
	}
	return out, errs
}

// validateResources: every limit must be at least its request.
func validateResources(p *field.Path, r *corev1.ResourceRequirements) field.ErrorList {
	var errs field.ErrorList
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && lim.Cmp(req) < 0 {
			errs = append(errs, field.Invalid(p.Child("limits").Key(string(name)), lim.String(),
				"resources.limits must be at least resources.requests for every resource (request "+req.String()+")"))
		}
		if req.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), req.String(), "must not be negative"))
		}
	}
	for name, lim := range r.Limits {
		if lim.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("limits").Key(string(name)), lim.String(), "must not be negative"))
		}
	}
	return errs
}

func setInt(dst *int, v *int32) {
	if v != nil {
		*dst = int(*v)
	}
}

func setDuration(dst *time.Duration, p *field.Path, v *metav1.Duration) field.ErrorList {
	d, errs := positiveDuration(p, v)
	if v != nil && len(errs) == 0 {
		*dst = d
	}
	return errs
}

func setRate(dst *float64, p *field.Path, q *resource.Quantity) field.ErrorList {
	f, errs := positiveQuantity(p, q)
	if q != nil && len(errs) == 0 {
		*dst = f
	}
	return errs
}
