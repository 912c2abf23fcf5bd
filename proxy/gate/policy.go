package gate

import (
	"time"

	"github.com/binderguard/binderguard/policies/snapshot"
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

	// Stale launches the last commit of the spec's ref that reached ready,
	// no longer ago than StaleMaxAge (0: no commit qualifies), while a
	// newer one builds (see stale.go).
	Stale       bool
	StaleMaxAge time.Duration
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

// DefaultLaunch are the built-in launch settings of policies/snapshot
// (see the reasons given there), for running without a policy source.
func DefaultLaunch() Launch { return launchFrom(snapshot.DefaultLaunch()) }

// StaticPolicies applies one launch setting to every spec and keys
// launches by the provider spec as received (minus a trailing slash).
// For tests and for running without a policy source.
func StaticPolicies(l Launch, g Global) Policies {
	return PoliciesFunc(func(providerSpec string, _ time.Time) (Policy, error) {
		return Policy{Key: providerSpec, Name: "static", Launch: l, Global: g}, nil
	})
}
