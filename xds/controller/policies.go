package controller

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/xds/ir"
)

// Edge tuning that is not policy.
const (
	// launchIdleTimeout: BinderHub and the gate send a keepalive every 25 s
	// or less; a minute of silence means the stream is dead.
	launchIdleTimeout = time.Minute
	// launchMargin is added to the longest build for the launch itself
	// (pod start, hub API) before Envoy cuts a stream.
	launchMargin = 10 * time.Minute
	// nonLaunchHeadroom is the binder cluster capacity kept for everything
	// that is not a launch stream (pages, static files, /health).
	nonLaunchHeadroom = 1024
)

// BanBlocks turns the snapshot's active Enforce-mode bans into edge rules,
// one per canonical path prefix. Warn and Audit bans do not block.
//
// The site's extra providers (extra) have no repository identity a ban
// could list, so patterns are how they are banned: a pattern that is a
// plain prefix rule ("^evil/.*", see match.Regex.WholePrefix) and applies
// to every provider becomes "/build/<extra>/<prefix>" for each of them.
// Other patterns, and other letter cases, are the gate's to catch.
func BanBlocks(snap *snapshot.Snapshot, now time.Time, extra []string) []ir.Block {
	bans := snap.Bans(now)
	n := 0
	for _, b := range bans {
		n += len(b.Prefixes) + len(b.Patterns)*len(extra)
	}
	// Sized once: 20,000 blocks grown by append left four times their size
	// as garbage on every full build.
	out := make([]ir.Block, 0, n)
	for _, b := range bans {
		if b.Mode != match.ModeEnforce {
			continue
		}
		prefixes := slices.Clip(b.Prefixes) // appending must copy: the snapshot is shared
		for _, pat := range b.Patterns {
			lit := pat.Regex.WholePrefix()
			if pat.Provider != "" || !pathSafe(lit) {
				continue
			}
			for _, e := range extra {
				prefixes = append(prefixes, ir.LaunchPrefix+e+"/"+lit)
			}
		}
		for _, p := range prefixes {
			msg := b.Message
			if msg == "" {
				msg = match.DefaultBanMessage(strings.TrimSuffix(strings.TrimPrefix(p, ir.LaunchPrefix), "/"))
			}
			out = append(out, ir.Block{PathPrefix: p, Class: ir.ClassBanned, StatusCode: 403, Message: msg, Source: b.Policy})
		}
	}
	return out
}

// pathSafe reports whether s is non-empty and reaches Envoy's :path as
// written: RFC 3986 path characters, no "%" (an encoded spelling is the
// gate's to decode), no "//" or dot segment the edge normalises away.
func pathSafe(s string) bool {
	if s == "" || strings.HasPrefix(s, "/") || strings.Contains(s, "//") || strings.Contains(s, "./") || strings.HasSuffix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// EdgeLaunch is the launch route's settings. The edge has one launch
// route, so per-repository differences are the gate's to apply: the
// client rate is the site-wide policy's (the one that applies to a
// repository no narrower policy selects; only it may set one), and the
// stream cap lets through the longest launch any policy allows.
func EdgeLaunch(snap *snapshot.Snapshot) ir.Launch {
	site := snap.LaunchRepo("")
	out := ir.Launch{IdleTimeout: launchIdleTimeout, MaxStreamDuration: streamCap(append(snap.Launches(), site))}
	if site.Mode == match.ModeEnforce && site.Shed.ClientIPRate > 0 {
		out.ClientRate = ir.RateLimit{PerSecond: site.Shed.ClientIPRate, Burst: uint32(max(site.Shed.ClientIPBurst, 1))}
	}
	return out
}

// streamCap is the longest a launch under any of policies may stream: a
// held launch waits for the build, then launches. None (0) when one of
// them leaves a build unbounded (no maxBuildDuration, or not enforced):
// Envoy must not cut a launch the gate lets run.
func streamCap(policies []snapshot.Launch) time.Duration {
	var longest time.Duration
	for _, l := range policies {
		d := l.Breaker.MaxBuildDuration
		if l.Mode != match.ModeEnforce || d <= 0 {
			return 0
		}
		longest = max(longest, d, l.Collapse.HoldTimeout)
	}
	return longest + launchMargin
}

// EdgeBreakers sizes the clusters' circuit breakers from the site-wide
// caps. They are a backstop above the gate's own caps: the gate sheds
// first, with a precise message; Envoy overflows only if the gate is
// bypassed or broken. The binder cluster carries fallback launches (one
// HTTP/1.1 connection each) besides ordinary traffic.
func EdgeBreakers(g snapshot.Global) (binder, gate ir.Breakers) {
	if g.MaxConcurrentTotal > 0 {
		n := uint32(g.MaxConcurrentTotal + nonLaunchHeadroom)
		binder = ir.Breakers{MaxConnections: n, MaxPendingRequests: n, MaxRequests: n}
	}
	if g.MaxWaitersTotal > 0 || g.MaxConcurrentTotal > 0 {
		n := uint32(g.MaxWaitersTotal + g.MaxConcurrentTotal)
		n += n / 10
		gate = ir.Breakers{MaxPendingRequests: n, MaxRequests: n}
	}
	return binder, gate
}

// ApplySnapshot gives c everything it needs from snap.
func (c *Controller) ApplySnapshot(snap *snapshot.Snapshot, now time.Time) {
	binder, gate := EdgeBreakers(snap.Global())
	c.update(func() {
		c.bans = BanBlocks(snap, now, c.extra)
		c.base.Launch = EdgeLaunch(snap)
		c.base.Binder.Breakers, c.base.Gate.Breakers = binder, gate
	})
}

// WatchPolicies feeds every new policy snapshot to c until ctx ends, and
// re-applies the latest when a ban expires.
func WatchPolicies(ctx context.Context, store *snapshot.Store, c *Controller) {
	snaps := store.Subscribe(ctx)
	cur := store.Load()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if cur != nil {
			c.ApplySnapshot(cur, now)
			timer.Reset(time.Hour)
			if next := cur.NextExpiry(now); !next.IsZero() {
				timer.Reset(next.Sub(now) + 10*time.Millisecond)
			}
		}
		select {
		case <-ctx.Done():
			return
		case s, ok := <-snaps:
			if !ok {
				return
			}
			cur = s
		case <-timer.C:
		}
	}
}
