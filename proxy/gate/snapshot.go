package gate

import (
	"time"

	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
)

// SnapshotPolicies resolves each launch against the latest policy
// snapshot in store: the spec is parsed with policies/spec (so every
// spelling of a repository meets the same bans), keyed by its BuildKey,
// checked against the bans and given its LaunchPolicy settings. parser
// names the site's extra provider prefixes; nil knows BinderHub's built-in
// providers only.
func SnapshotPolicies(store *snapshot.Store, parser *spec.Parser) Policies {
	return PoliciesFunc(func(providerSpec string, now time.Time) (Policy, error) {
		sp, err := parser.Parse(providerSpec)
		if err != nil {
			return Policy{}, err
		}
		return FromSnapshot(store.Load(), sp, now), nil
	})
}

// FromSnapshot is the gate's Policy for sp under snap.
func FromSnapshot(snap *snapshot.Snapshot, sp spec.Spec, now time.Time) Policy {
	l := snap.Launch(sp)
	g := snap.Global()
	p := Policy{
		Key:    sp.BuildKey(),
		Name:   l.Policy,
		Launch: launchFrom(l),
		Global: Global{MaxWaitersTotal: g.MaxWaitersTotal, MaxConcurrentTotal: g.MaxConcurrentTotal},
	}
	if hit, ok := snap.Ban(sp, now); ok {
		p.Ban = &Ban{Policy: hit.Policy, Message: hit.Message, Enforce: hit.Mode == match.ModeEnforce || hit.Mode == ""}
	}
	return p
}

// launchFrom maps a resolved LaunchPolicy to the gate's settings. A policy
// in Warn or Audit mode only reports: the gate still collapses (invisible
// to users, and the point of the gate) but sheds nothing for it: no
// per-spec caps, no hold timeout, a breaker that never opens, and no
// stale launches.
func launchFrom(l snapshot.Launch) Launch {
	out := Launch{
		Collapse:        l.Collapse.Enabled,
		MaxWaiters:      l.Collapse.MaxWaiters,
		HoldTimeout:     l.Collapse.HoldTimeout,
		ReleaseRate:     l.Collapse.ReleaseRate,
		ReleaseBurst:    l.Collapse.ReleaseBurst,
		MaxConcurrent:   l.Shed.MaxConcurrent,
		BreakerFailures: l.Breaker.ConsecutiveFailures,
		BreakerOpen:     l.Breaker.OpenDuration,
		MaxBuild:        l.Breaker.MaxBuildDuration,
		Stale:           l.Stale.Enabled,
		StaleMaxAge:     l.Stale.MaxAge,
	}
	if l.Mode == match.ModeWarn || l.Mode == match.ModeAudit {
		// Stale launches change what users get, so they are off too.
		out.MaxWaiters, out.MaxConcurrent, out.HoldTimeout, out.MaxBuild = 0, 0, 0, 0
		out.Stale = false
		out.BreakerFailures = neverTrip
	}
	return out
}

// neverTrip is a failure count no build streak reaches.
const neverTrip = 1 << 30
