package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says what binderguard does when a policy applies.
//
// - Enforce: refuse the launch or pod (the default).
// - Warn: allow it, with a warning to the user or an admission warning.
// - Audit: allow it silently and only record it (logs, metrics, status).
//
// +kubebuilder:validation:Enum=Enforce;Warn;Audit
type Mode string

// Mode values.
const (
	ModeEnforce Mode = "Enforce"
	ModeWarn    Mode = "Warn"
	ModeAudit   Mode = "Audit"
)

// Provider is a BinderHub repository provider prefix.
//
// +kubebuilder:validation:Enum=gh;gist;git;gl;zenodo;figshare;hydroshare;dataverse;ckan
type Provider string

// Provider values, as BinderHub spells them in /build/<provider>/<spec>.
const (
	ProviderGitHub     Provider = "gh"
	ProviderGist       Provider = "gist"
	ProviderGit        Provider = "git"
	ProviderGitLab     Provider = "gl"
	ProviderZenodo     Provider = "zenodo"
	ProviderFigshare   Provider = "figshare"
	ProviderHydroShare Provider = "hydroshare"
	ProviderDataverse  Provider = "dataverse"
	ProviderCKAN       Provider = "ckan"
)

// RepoRef names one repository as a BinderHub spec without a ref, in any
// provider form: "gh/jupyterlab/jupyterlab-demo",
// "git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo.git",
// "gl/group%2Fproject". binderguard normalises it to a repository identity,
// so one entry covers every spelling of the same repository (letter case
// where the provider ignores it, percent-encoding, a trailing slash or
// ".git", GitHub reached through git/) and every ref.
//
// The API server checks the shape (a known provider; owner and name for gh
// and gist). Whether the rest names a repository the provider can serve (a
// DOI, a clone URL) is checked by binderguard; a RepoRef it cannot parse is
// reported in the policy's Accepted condition. A trailing ref is tolerated
// and ignored.
//
// +kubebuilder:validation:MinLength=4
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:Pattern=`^(gh|gist|git|gl|zenodo|figshare|hydroshare|dataverse|ckan)/[^\s]+$`
// +kubebuilder:validation:XValidation:rule="!self.matches('^(gh|gist)/') || self.matches('^(gh|gist)/[^/]+/[^/]+')",message="a gh or gist repository is <provider>/<owner>/<name>"
type RepoRef string

// Regex is a BinderHub-compatible spec pattern, as in BinderHub's
// banned_specs: matched from the start of the spec without its provider
// prefix (Python's re.match), case-insensitively.
//
// The API server compiles it with the same engine binderguard matches with
// (Go's RE2 syntax), so a pattern that could never be used is refused at
// admission. Python-only syntax (look-ahead, look-behind, back-references)
// is refused for that reason: rewrite it, or list the repositories.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:XValidation:rule="type('x'.matches(self)) == bool",message="regex must be a valid RE2 regular expression"
type Regex string

// SpecPattern is a regex, optionally scoped to one provider.
type SpecPattern struct {
	// Regex is matched case-insensitively from the start of the spec
	// without its provider prefix, exactly like an entry of BinderHub's
	// banned_specs: "^ines/spacy-binder.*" or ".*xmrig.*".
	//
	// +required
	Regex Regex `json:"regex"`

	// Provider limits the pattern to specs of one provider, as BinderHub's
	// banned_specs are configured per provider. Empty means every provider.
	//
	// +optional
	Provider Provider `json:"provider,omitempty"`
}

// Condition types and reasons binderguard sets on its policies.
const (
	// ConditionAccepted is True when binderguard has taken the object into
	// its policy snapshot and False when it had to leave it, or some of
	// its entries, out.
	ConditionAccepted = "Accepted"

	// ReasonAccepted goes with Accepted=True.
	ReasonAccepted = "Accepted"
	// ReasonInvalid goes with Accepted=False: the object passed the API
	// server's validation but binderguard could not use it (for example a
	// repository it cannot parse); the message says which field and why.
	ReasonInvalid = "Invalid"
	// ReasonEntriesIgnored goes with Accepted=False: some of a RepoBan's
	// repos or patterns could not be used and are ignored; the rest of the
	// ban is in force.
	ReasonEntriesIgnored = "EntriesIgnored"
)

// PolicyConditions is embedded in both kinds' status.
type PolicyConditions struct {
	// Conditions describe whether binderguard accepted this policy.
	// Known condition types are "Accepted".
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ObservedGeneration is the metadata.generation that the conditions
	// describe.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}
