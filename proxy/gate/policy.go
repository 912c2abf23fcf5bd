package gate

import (
	"time"
)

// Policy is what the gate needs to know about one launch request's spec.
// Adapters turn the policy snapshot into it (see SnapshotPolicies).
type Policy struct {
	// Key is the collapse key: launches with equal keys share one build.
	Key string
	// Name names the launch policy that applied, for logs.
	Name string
	// Ban is set when a ban matches the spec.
	Ban    *Ban
	Launch Launch
	Global Global
}

// Ban is a ban that matched a spec.
type Ban struct {
	Policy  string
	Message string
	// Enforce rejects the launch; otherwise (Warn, Audit) it is only logged.
	Enforce bool
}

// Launch are the per-spec settings of a launch policy. Zero caps mean no
// cap.
type Launch struct {
	Collapse     bool
	MaxWaiters   int
	HoldTimeout  time.Duration // 0: held until the build ends
	ReleaseRate  float64       // releases per second; 0: no pacing
	ReleaseBurst int

	MaxConcurrent int // upstream launch streams of the spec at once

	BreakerFailures int           // consecutive build failures that open the breaker
	BreakerOpen     time.Duration // how long it stays open before a probe
	MaxBuild        time.Duration // 0: no limit
}

// Global are the site-wide caps.
type Global struct {
	MaxWaitersTotal    int
	MaxConcurrentTotal int
}

// Policies resolves the policy for a launch. providerSpec is the path
// after /build/, still percent-encoded. An error means the spec cannot be
// parsed: the gate answers it with a failed event (400), because a spec it
// cannot parse is a spec it cannot check against the bans.
type Policies interface {
	Resolve(providerSpec string, now time.Time) (Policy, error)
}

// PoliciesFunc adapts a function to Policies.
type PoliciesFunc func(providerSpec string, now time.Time) (Policy, error)

// Resolve calls f.
func (f PoliciesFunc) Resolve(providerSpec string, now time.Time) (Policy, error) {
	return f(providerSpec, now)
}

// DefaultLaunch are the settings used when no launch policy says
// otherwise. Why these numbers: a repo2docker build takes minutes, so a
// held follower may wait up to the 4 h build_max_age of BinderHub; ten
// releases a second with a burst of 20 keeps a released crowd below
// BinderHub's launch throughput; three failed builds in a row are not
// bad luck; five minutes open matches a retry a user would make anyway.
func DefaultLaunch() Launch {
	return Launch{
		Collapse:        true,
		MaxWaiters:      5000,
		HoldTimeout:     4 * time.Hour,
		ReleaseRate:     10,
		ReleaseBurst:    20,
		BreakerFailures: 3,
		BreakerOpen:     5 * time.Minute,
		MaxBuild:        4 * time.Hour,
	}
}

// StaticPolicies applies one launch setting to every spec and keys
// launches by the provider spec as received (minus a trailing slash).
// For tests and for running without a policy source.
func StaticPolicies(l Launch, g Global) Policies {
	return PoliciesFunc(func(providerSpec string, _ time.Time) (Policy, error) {
		return Policy{Key: providerSpec, Name: "static", Launch: l, Global: g}, nil
	})
}
