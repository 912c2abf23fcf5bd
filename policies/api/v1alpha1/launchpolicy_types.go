package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LaunchPolicy sets how launches of the repositories it selects are
// collapsed, shed, broken and built. Where several LaunchPolicies select the
// same spec, one wins as a whole (settings are not merged): the most
// specific selector (a repos entry before a pattern before an empty
// selector), then the highest priority, then namespace/name order. Settings
// the winning policy leaves unset take binderguard's built-in defaults.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=binderguard,shortName=lpol
// +kubebuilder:printcolumn:name="Selector",type=string,JSONPath=`.spec.selector.repos`
// +kubebuilder:printcolumn:name="Patterns",type=string,JSONPath=`.spec.selector.patterns[*].regex`,priority=1
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Waiting",type=integer,JSONPath=`.status.waiters`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LaunchPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the settings.
	//
	// +required
	Spec LaunchPolicySpec `json:"spec"`

	// Status is written by binderguard.
	//
	// +optional
	Status LaunchPolicyStatus `json:"status,omitempty"`
}

// LaunchPolicySpec holds the launch settings for the specs it selects.
//
// +kubebuilder:validation:XValidation:rule="!has(self.collapse) || !has(self.collapse.maxWaiters) || !has(self.shed) || !has(self.shed.maxWaitersTotal) || self.collapse.maxWaiters <= self.shed.maxWaitersTotal",message="collapse.maxWaiters must not exceed shed.maxWaitersTotal"
// +kubebuilder:validation:XValidation:rule="!has(self.shed) || !has(self.shed.clientIPRate) || !has(self.selector) || ((!has(self.selector.repos) || size(self.selector.repos) == 0) && (!has(self.selector.patterns) || size(self.selector.patterns) == 0))",message="shed.clientIPRate is enforced site-wide by Envoy's one launch route: set it on a LaunchPolicy with an empty selector"
type LaunchPolicySpec struct {
	// Selector picks the specs this policy applies to. Empty selects every
	// spec.
	//
	// +optional
	Selector SpecSelector `json:"selector,omitempty"`

	// Priority orders overlapping policies whose selectors are equally
	// specific: the higher wins.
	//
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`

	// Mode is Enforce (apply the settings), Warn (apply nothing, warn
	// where a setting would have refused or changed something) or Audit
	// (apply nothing, record it). Defaults to Enforce.
	//
	// +optional
	// +kubebuilder:default=Enforce
	Mode Mode `json:"mode,omitempty"`

	// Collapse holds repeat launches of a spec that is building behind one
	// upstream build stream.
	//
	// +optional
	Collapse *CollapseSpec `json:"collapse,omitempty"`

	// Shed caps what binderguard lets through or holds, per spec, in total
	// and per client IP; past a cap a launch gets a "failed" event with
	// status_code 429 and a Retry-After header.
	//
	// +optional
	Shed *ShedSpec `json:"shed,omitempty"`

	// Breaker stops launches of a spec whose builds keep failing.
	//
	// +optional
	Breaker *BreakerSpec `json:"breaker,omitempty"`

	// Build bounds the build pods of the selected specs (applied by the
	// admission webhook).
	//
	// +optional
	Build *BuildSpec `json:"build,omitempty"`

	// StaleWhileBuilding launches the last commit of a ref that reached
	// ready while a newer commit of it builds, instead of holding the
	// launch for the whole build. Off by default: users get older content.
	//
	// +optional
	StaleWhileBuilding *StaleWhileBuildingSpec `json:"staleWhileBuilding,omitempty"`
}

// StaleWhileBuildingSpec configures launching the last good image of a ref
// (such as HEAD) while a newer commit of it is being built.
type StaleWhileBuildingSpec struct {
	// Enabled turns stale launches on for the selected specs. Defaults to
	// false.
	//
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// MaxAge is how long after the gate last saw a commit of the ref reach
	// ready that commit may still be launched in place of a building one
	// (a Go duration such as "168h"). Defaults to 168h (a week).
	//
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// SpecSelector picks specs by repository or by pattern. A spec is selected
// when it matches any entry; an empty selector selects every spec.
type SpecSelector struct {
	// Repos lists repositories as specs without a ref ("gh/org/repo");
	// every ref and every spelling of each is selected.
	//
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	Repos []RepoRef `json:"repos,omitempty"`

	// Patterns lists BinderHub-compatible regexes matched against the spec
	// without its provider prefix, case-insensitively.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Patterns []SpecPattern `json:"patterns,omitempty"`
}

// CollapseSpec configures collapsing of repeat launches.
//
// +kubebuilder:validation:XValidation:rule="!has(self.releaseBurst) || has(self.releaseRate)",message="releaseBurst requires releaseRate"
type CollapseSpec struct {
	// Enabled turns collapsing on or off for the selected specs. Defaults
	// to true.
	//
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// MaxWaiters is the most launches held for one building spec; past it
	// launches are shed.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxWaiters *int32 `json:"maxWaiters,omitempty"`

	// HoldTimeout is the longest a launch is held waiting for a build
	// (a Go duration such as "30m" or "1h30m"); after it the launch gets a
	// "failed" event.
	//
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="holdTimeout must be a positive duration"
	HoldTimeout *metav1.Duration `json:"holdTimeout,omitempty"`

	// ReleaseRate is how many held launches per second are released to
	// BinderHub once the image is built, as a quantity: "5", or "500m" for
	// one every two seconds. (Write fractions as milli-units or quoted
	// strings: a bare YAML 0.5 is a float, which a quantity field refuses.)
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self > 0 : (isQuantity(self) && quantity(self).isGreaterThan(quantity('0')))",message="releaseRate must be a positive quantity"
	ReleaseRate *resource.Quantity `json:"releaseRate,omitempty"`

	// ReleaseBurst is how many held launches may be released at once.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	ReleaseBurst *int32 `json:"releaseBurst,omitempty"`
}

// ShedSpec caps launches. The totals (MaxConcurrentTotal,
// MaxWaitersTotal) are site-wide: the smallest value set by any accepted
// Enforce-mode LaunchPolicy applies, whatever it selects.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxConcurrentPerSpec) || !has(self.maxConcurrentTotal) || self.maxConcurrentPerSpec <= self.maxConcurrentTotal",message="maxConcurrentPerSpec must not exceed maxConcurrentTotal"
// +kubebuilder:validation:XValidation:rule="!has(self.clientIPBurst) || has(self.clientIPRate)",message="clientIPBurst requires clientIPRate"
type ShedSpec struct {
	// MaxConcurrentPerSpec is the most launches of one spec in flight to
	// BinderHub at once.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxConcurrentPerSpec *int32 `json:"maxConcurrentPerSpec,omitempty"`

	// MaxConcurrentTotal is the most launches in flight to BinderHub at
	// once, site-wide.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxConcurrentTotal *int32 `json:"maxConcurrentTotal,omitempty"`

	// MaxWaitersTotal is the most launches held, site-wide.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxWaitersTotal *int32 `json:"maxWaitersTotal,omitempty"`

	// ClientIPRate is how many launches per second one client IP may
	// start, as a quantity ("1", "100m" for one every ten seconds).
	// Envoy enforces it on its one launch route, so it is allowed only on
	// a LaunchPolicy with an empty selector (the site-wide one).
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self > 0 : (isQuantity(self) && quantity(self).isGreaterThan(quantity('0')))",message="clientIPRate must be a positive quantity"
	ClientIPRate *resource.Quantity `json:"clientIPRate,omitempty"`

	// ClientIPBurst is how many launches one client IP may start at once.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	ClientIPBurst *int32 `json:"clientIPBurst,omitempty"`
}

// BreakerSpec configures the per-spec circuit breaker.
type BreakerSpec struct {
	// ConsecutiveFailures is how many failed builds in a row open the
	// breaker.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	ConsecutiveFailures *int32 `json:"consecutiveFailures,omitempty"`

	// OpenDuration is how long an open breaker refuses launches before it
	// lets one through to try again (a Go duration such as "5m").
	//
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="openDuration must be a positive duration"
	OpenDuration *metav1.Duration `json:"openDuration,omitempty"`

	// MaxBuildDuration is the longest a build may take; a longer build
	// counts as a failure (a Go duration such as "1h").
	//
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxBuildDuration must be a positive duration"
	MaxBuildDuration *metav1.Duration `json:"maxBuildDuration,omitempty"`
}

// BuildSpec bounds build pods.
//
// The limits-versus-requests rule names the resources build pods use (cpu,
// memory, ephemeral-storage) instead of iterating the maps: a
// ResourceRequirements map has no size bound the API server could use to
// estimate the cost of a loop, so such a rule is refused as too expensive.
//
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.limits) || !has(self.resources.requests) || ['cpu', 'memory', 'ephemeral-storage'].all(k, !(k in self.resources.limits) || !(k in self.resources.requests) || quantity(string(self.resources.limits[k])).compareTo(quantity(string(self.resources.requests[k]))) >= 0)",message="resources.limits must be at least resources.requests for cpu, memory and ephemeral-storage"
type BuildSpec struct {
	// Resources are applied to a build pod's containers that set none, and
	// are the most a build pod may set (a pod asking for more is refused,
	// or clamped by the mutating webhook).
	//
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// ActiveDeadlineSeconds is set on build pods that have none, and is the
	// longest one may ask for.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=604800
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
}

// HotSpec is a spec the launch gate is holding launches for.
type HotSpec struct {
	// Spec is the build key ("gh/org/repo/ref").
	//
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Spec string `json:"spec"`

	// Waiters is how many launches are held for it.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	Waiters int32 `json:"waiters,omitempty"`

	// Stage is what the build its launches are held for is doing now:
	// Starting (BinderHub has not answered the leading launch yet),
	// Building, or Releasing (the image is built and the held launches are
	// being let through). Unset while no launch of it is held (a spec
	// listed only for its open breaker). If launches of it are held on
	// several replicas, the least advanced of their stages.
	//
	// +optional
	Stage BuildStage `json:"stage,omitempty"`

	// BreakerOpenUntil is set while the spec's breaker is open.
	//
	// +optional
	BreakerOpenUntil *metav1.Time `json:"breakerOpenUntil,omitempty"`
}

// BuildStage is how far the build of a hot spec is, at the gate.
//
// +kubebuilder:validation:Enum=Starting;Building;Releasing
type BuildStage string

// BuildStage values, in the order a build goes through them.
const (
	BuildStageStarting  BuildStage = "Starting"
	BuildStageBuilding  BuildStage = "Building"
	BuildStageReleasing BuildStage = "Releasing"
)

// LaunchPolicyStatus is written by binderguard.
type LaunchPolicyStatus struct {
	PolicyConditions `json:",inline"`

	// Waiters is how many launches the gate holds under this policy, as
	// last reported.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	Waiters int32 `json:"waiters,omitempty"`

	// HotSpecs lists the busiest specs under this policy (at most 16).
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	HotSpecs []HotSpec `json:"hotSpecs,omitempty"`

	// CountersReportedAt is when Waiters and HotSpecs were last reported.
	//
	// +optional
	CountersReportedAt *metav1.Time `json:"countersReportedAt,omitempty"`
}

// LaunchPolicyList is a list of LaunchPolicies.
//
// +kubebuilder:object:root=true
type LaunchPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LaunchPolicy `json:"items"`
}
