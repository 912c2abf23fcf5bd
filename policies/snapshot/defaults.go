package snapshot

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/binderguard/binderguard/policies/match"
)

// DefaultPolicyName is Launch.Policy when no LaunchPolicy selects a spec.
const DefaultPolicyName = "default"

// Built-in defaults, used when no LaunchPolicy selects a spec and for every
// setting the winning LaunchPolicy leaves unset. Why each number:
const (
	// A storm on one popular repository is a few thousand launches (the
	// 2018 incident peaked at a few hundred a minute during a build of tens
	// of minutes); a held launch costs the gate about 13 KiB, so 2000 per
	// spec is 26 MiB, affordable, and still bounds one runaway spec.
	DefaultMaxWaiters = 2000
	// Most repo2docker builds finish within 30 minutes; a user who has
	// watched a spinner that long is better served by a clear failure and
	// a retry than by an open-ended wait.
	DefaultHoldTimeout = 30 * time.Minute
	// Released launches each cost BinderHub a launch (a pod create and a
	// hub API call); 20 per second with a burst of 20 drains 2000 waiters in
	// under two minutes while staying well inside what one binder pod and
	// JupyterHub's spawner handle.
	DefaultReleaseRate  = 20.0
	DefaultReleaseBurst = 20
	// Per spec, in-flight launches are already bounded by collapsing and
	// the release rate; 0 means no separate cap.
	DefaultMaxConcurrentPerSpec = 0
	// BinderHub applies its own per-IP rate limit; 0 leaves that to it.
	DefaultClientIPRate  = 0.0
	DefaultClientIPBurst = 0
	// Site-wide: 5000 upstream streams keeps Envoy and the binder pod's
	// file descriptors and tornado's event loop far from their limits;
	// 20000 held launches is about 260 MiB of gate memory.
	DefaultMaxConcurrentTotal = 5000
	DefaultMaxWaitersTotal    = 20000
	// Three failed builds in a row are not bad luck; five minutes open is
	// about when a user would retry anyway.
	DefaultConsecutiveFailures = 3
	DefaultOpenDuration        = 5 * time.Minute
	// A build running for an hour is stuck or abusive (mybinder builds take
	// minutes); BinderHub's own build_max_age of 4 h is far too late to
	// protect the site.
	DefaultMaxBuildDuration = time.Hour
	// Stale while building is off: users would get older content than
	// they asked for, a choice for the site to make per repository. When
	// on, a week bounds how old that content may be: a repository popular
	// enough to need it is launched far more often than weekly, so its
	// last good commit is fresher than that, and a registry's clean-up
	// policy rarely deletes an image younger than that.
	DefaultStaleEnabled = false
	DefaultStaleMaxAge  = 168 * time.Hour
)

// DefaultLaunch is the Launch used when no LaunchPolicy selects a spec.
// Build resources are left empty: binderguard does not guess a site's
// build pod size; set spec.build in a LaunchPolicy.
func DefaultLaunch() Launch {
	return Launch{
		Policy: DefaultPolicyName,
		Mode:   match.ModeEnforce,
		Collapse: Collapse{
			Enabled:      true,
			MaxWaiters:   DefaultMaxWaiters,
			HoldTimeout:  DefaultHoldTimeout,
			ReleaseRate:  DefaultReleaseRate,
			ReleaseBurst: DefaultReleaseBurst,
		},
		Shed: Shed{
			MaxConcurrent: DefaultMaxConcurrentPerSpec,
			ClientIPRate:  DefaultClientIPRate,
			ClientIPBurst: DefaultClientIPBurst,
		},
		Breaker: Breaker{
			ConsecutiveFailures: DefaultConsecutiveFailures,
			OpenDuration:        DefaultOpenDuration,
			MaxBuildDuration:    DefaultMaxBuildDuration,
		},
		Build: BuildLimits{Resources: corev1.ResourceRequirements{}},
		Stale: Stale{Enabled: DefaultStaleEnabled, MaxAge: DefaultStaleMaxAge},
	}
}

// DefaultGlobal are the site-wide caps when no LaunchPolicy sets them.
func DefaultGlobal() Global {
	return Global{MaxWaitersTotal: DefaultMaxWaitersTotal, MaxConcurrentTotal: DefaultMaxConcurrentTotal}
}
