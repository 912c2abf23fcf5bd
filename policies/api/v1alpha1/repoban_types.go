package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RepoBan refuses launches of repositories: the action from the
// 2018-07-30 incident made first-class. A ban covers every ref of every
// repository it names, however the launch spells the repository.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=binderguard,shortName=rban
// +kubebuilder:printcolumn:name="Repos",type=string,JSONPath=`.spec.repos`
// +kubebuilder:printcolumn:name="Patterns",type=string,JSONPath=`.spec.patterns[*].regex`,priority=1
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expires`,description="when the ban stops applying (a date column would show a future time as <invalid>)"
// +kubebuilder:printcolumn:name="Blocked",type=integer,JSONPath=`.status.blockedLaunches`,description="launches the launch gate refused for this ban, summed over replicas (a lower bound: Envoy counts its own refusals only by class)"
// +kubebuilder:printcolumn:name="Refused",type=integer,JSONPath=`.status.refusedPods`,description="pods the validating webhook denied because of this ban, summed over replicas"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RepoBan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says what is banned and how.
	//
	// +required
	Spec RepoBanSpec `json:"spec"`

	// Status is written by binderguard.
	//
	// +optional
	Status RepoBanStatus `json:"status,omitempty"`
}

// RepoBanSpec says which repositories are banned and what happens to a
// launch of one.
//
// +kubebuilder:validation:XValidation:rule="(has(self.repos) && size(self.repos) > 0) || (has(self.patterns) && size(self.patterns) > 0)",message="at least one of repos or patterns must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.onExisting) || self.onExisting != 'Delete' || !has(self.mode) || self.mode == 'Enforce'",message="onExisting: Delete requires mode: Enforce"
type RepoBanSpec struct {
	// Repos lists banned repositories as specs without a ref, in any
	// provider form ("gh/org/repo", "git/<url-encoded clone url>",
	// "gl/<url-encoded namespace>"). Every ref of each is banned.
	//
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	Repos []RepoRef `json:"repos,omitempty"`

	// Patterns lists BinderHub-compatible regexes, so an existing
	// banned_specs list carries over unchanged. Prefer Repos where you can
	// name the repository: a pattern is matched against the spec as
	// spelled, while a repository entry covers every spelling.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Patterns []SpecPattern `json:"patterns,omitempty"`

	// Message is shown to the user whose launch is refused. When empty,
	// BinderHub's own wording is used ("Sorry, <spec> is not allowed to
	// launch. Please contact admins for more info!").
	//
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// Expires is the time (RFC 3339) after which the ban stops applying by
	// itself; the object stays until someone deletes it. When unset the
	// ban never expires.
	//
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`

	// Mode is Enforce (refuse), Warn (allow with a warning) or Audit
	// (allow and record). Defaults to Enforce.
	//
	// +optional
	// +kubebuilder:default=Enforce
	Mode Mode `json:"mode,omitempty"`

	// OnExisting says what the webhook does about pods of a banned
	// repository that already run when the ban is created: Ignore them
	// (the default), Report them in status.matchedPods, or Delete them
	// (requires mode Enforce).
	//
	// +optional
	// +kubebuilder:default=Ignore
	OnExisting OnExisting `json:"onExisting,omitempty"`
}

// OnExisting says what happens to running pods of a banned repository.
//
// +kubebuilder:validation:Enum=Ignore;Report;Delete
type OnExisting string

// OnExisting values.
const (
	OnExistingIgnore OnExisting = "Ignore"
	OnExistingReport OnExisting = "Report"
	OnExistingDelete OnExisting = "Delete"
)

// PodRole tells build pods from user pods.
//
// +kubebuilder:validation:Enum=Build;User
type PodRole string

// PodRole values.
const (
	PodRoleBuild PodRole = "Build"
	PodRoleUser  PodRole = "User"
)

// PodAction is what binderguard did about a matched pod.
//
// +kubebuilder:validation:Enum=Reported;Deleted
type PodAction string

// PodAction values.
const (
	PodActionReported PodAction = "Reported"
	PodActionDeleted  PodAction = "Deleted"
)

// MatchedPod is one running pod of a banned repository.
type MatchedPod struct {
	// Namespace of the pod.
	//
	// +required
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// Name of the pod.
	//
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Role says whether it is a BinderHub build pod or a user pod.
	//
	// +required
	Role PodRole `json:"role"`

	// Action is what binderguard did about it.
	//
	// +required
	Action PodAction `json:"action"`
}

// RepoBanStatus is written by binderguard.
type RepoBanStatus struct {
	PolicyConditions `json:",inline"`

	// MatchedPods lists running pods of a banned repository found when the
	// ban was created or changed (onExisting Report or Delete), at most 64;
	// MatchedPodCount has the full count.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	MatchedPods []MatchedPod `json:"matchedPods,omitempty"`

	// MatchedPodCount is the number of matched pods, including those not
	// listed in MatchedPods.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	MatchedPodCount int32 `json:"matchedPodCount,omitempty"`

	// BlockedLaunches counts launches this ban refused at binderguard's
	// launch gate (Enforce mode), added up over every replica. It is a
	// lower bound of the launches the ban stopped: Envoy answers launches
	// on the ban's edge rules (its repositories' canonical launch paths)
	// itself, and counts those only by class, not per ban
	// (envoy_binderguard_launches{class="banned"}). What reaches the gate
	// and is counted here is, for example, other spellings of a banned
	// repository, pattern matches, and launches in the moments before a
	// new ban reaches Envoy.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	BlockedLaunches int64 `json:"blockedLaunches,omitempty"`

	// RefusedPods counts pods the validating webhook denied because of this
	// ban (Enforce mode; dry runs excluded), added up by every replica.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	RefusedPods int64 `json:"refusedPods,omitempty"`

	// CountersReportedAt is when BlockedLaunches or RefusedPods last grew.
	//
	// +optional
	CountersReportedAt *metav1.Time `json:"countersReportedAt,omitempty"`
}

// RepoBanList is a list of RepoBans.
//
// +kubebuilder:object:root=true
type RepoBanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RepoBan `json:"items"`
}
