package evaluate

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/binderguard/binderguard/policies/match"
)

// Mode is how a policy acts on what it matches.
type Mode = match.Mode

// The modes a RepoBan or LaunchPolicy can run in.
const (
	// ModeEnforce denies (bans, maxima) and mutates (build limits).
	ModeEnforce = match.ModeEnforce
	// ModeWarn allows and returns an admission warning to the client; a
	// Warn LaunchPolicy does not mutate.
	ModeWarn = match.ModeWarn
	// ModeAudit allows silently; the handler records a metric and an Event.
	ModeAudit = match.ModeAudit
)

// Ban is a ban that covers a repository.
type Ban struct {
	Policy  string // "RepoBan/<ns>/<name>"
	Rule    string // which entry of the ban matched
	Message string // the admin's message for users
	Mode    Mode
	Repo    string // canonical repository identity
}

// BuildPolicy is the resolved build policy for one repository.
type BuildPolicy struct {
	Policy string // "LaunchPolicy/<ns>/<name>" or "default"
	Mode   Mode
	// Resources.Limits are the maxima (and the limits set where a container
	// has none); Resources.Requests are the requests set where a container
	// has none.
	Resources corev1.ResourceRequirements
	// ActiveDeadlineSeconds is the longest a build pod may run; nil means no
	// deadline is required.
	ActiveDeadlineSeconds *int64
}

// Policies is what evaluation reads from a policy snapshot. Lookups parse
// their input with the shared spec parser so that every spelling of a
// repository meets the same ban; an error means the value could not be read
// as a repository at all.
type Policies interface {
	// BanURL looks up the ban covering a repository URL (binder-repo
	// annotation, repo2docker argument, BINDER_REPO_URL).
	BanURL(url string) (Ban, bool, error)
	// BanRequest looks up the ban covering a BinderHub request
	// ("v2/gh/org/repo/ref" in BINDER_REQUEST, BINDER_PERSISTENT_REQUEST).
	BanRequest(request string) (Ban, bool, error)
	// BuildFor resolves the build policy for a repository URL; an empty
	// or unreadable URL gets the site default. LaunchPolicies select
	// repositories, never refs, so the ref plays no part.
	BuildFor(url string) BuildPolicy
}
