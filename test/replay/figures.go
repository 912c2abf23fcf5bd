package replay

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/binderguard/binderguard/test/launchstorm"
)

// This file holds the pure parts of the report: a leg's figures, its
// per-second series and the targets, computed from what the legs
// recorded.

// Figures are one leg's numbers for the report's tables.
type Figures struct {
	Kind LegKind
	// The hot repository's launches: ready, failed with a Retry-After
	// (told when to retry), failed without one, and transport errors or
	// timeouts.
	StormClients, StormReady, StormRetry, StormFailed, StormErrors int
	StormP50, StormP99                                             float64
	DistinctTokens                                                 int
	// A stale leg's ready launches, split by what they got: the last good
	// commit (Leg.StaleCommit), served while the new one builds, or
	// anything else (the new commit). Zero for the other legs.
	StormReadyStale, StormReadyNew int
	// StaleLaunches and StaleFallbacks are the gate's own counts of
	// launches served the last good commit and of those held after all.
	StaleLaunches, StaleFallbacks int64
	// From the simulator's stats: peak build watchers (over the
	// simulator's life: a stale leg's commit A had its one before the
	// window) and silently queued requests, builds started in the window,
	// launches that ran slowed.
	PeakWatchers, PeakQueued, BuildsStarted, SlowedLaunches int64
	// PeakHeld is the most launches the gate held at once.
	PeakHeld int64
	// The background mix: launches, ready ones, time to ready.
	BackgroundClients, BackgroundReady int
	BackgroundP50, BackgroundP99       float64
	// SimCPU is the simulator's mean CPU over the window in cores,
	// SimCPUPeak its busiest second; GuardCPU binderguard's and Envoy's
	// mean. SimCPUBuild is the simulator's mean while the hot repository
	// builds (the first build time of the window), when the 2018 binder
	// pod saturated.
	SimCPU, SimCPUPeak, GuardCPU, SimCPUBuild float64
}

// toldToRetry reports whether a launch that did not get ready was told
// when to retry: a failed event whose response carried Retry-After.
func toldToRetry(r launchstorm.Result) bool {
	return r.Outcome == launchstorm.OutcomeFailed && r.RetryAfter != ""
}

// figures computes a leg's Figures over the first window of its samples
// (and the first build time of it).
func figures(leg Leg, window, build time.Duration) Figures {
	s := leg.Summary
	f := Figures{
		Kind: leg.Kind, StormClients: s.Clients, StormReady: s.Ready, StormErrors: s.Errors,
		StormP50: s.P50ReadyS, StormP99: s.P99ReadyS, DistinctTokens: s.DistinctTokens,
		PeakWatchers: leg.Sim.PeakBuildWatchers, PeakQueued: leg.Sim.PeakQueued,
		BuildsStarted: leg.Sim.BuildsStarted - leg.PreSim.BuildsStarted, SlowedLaunches: leg.Sim.SlowedLaunches - leg.PreSim.SlowedLaunches,
		StaleLaunches: leg.Gate.StaleLaunches, StaleFallbacks: leg.Gate.StaleFallbacks,
	}
	for _, r := range s.Results {
		if r.Outcome == launchstorm.OutcomeReady && leg.StaleCommit != "" {
			if readyWith(r, leg.StaleCommit) {
				f.StormReadyStale++
			} else {
				f.StormReadyNew++
			}
		}
		if r.Outcome != launchstorm.OutcomeFailed {
			continue
		}
		if toldToRetry(r) {
			f.StormRetry++
		} else {
			f.StormFailed++
		}
	}
	if s.Mix != nil {
		f.BackgroundClients, f.BackgroundReady = s.Mix.Clients, s.Mix.Ready
		f.BackgroundP50, f.BackgroundP99 = s.Mix.P50ReadyS, s.Mix.P99ReadyS
	}
	f.SimCPU, f.SimCPUBuild = meanCPU(leg.Samples, window), meanCPU(leg.Samples, build)
	var guard Sample
	for _, smp := range leg.Samples {
		if smp.T > window.Seconds()+0.5 {
			break
		}
		f.SimCPUPeak = max(f.SimCPUPeak, smp.SimCPU)
		guard.GuardCPU += smp.GuardCPU
		guard.T++
	}
	if guard.T > 0 {
		f.GuardCPU = guard.GuardCPU / guard.T
	}
	for _, smp := range leg.Samples {
		f.PeakHeld = max(f.PeakHeld, smp.Held)
	}
	return f
}

// meanCPU is the simulator's CPU time up to the last sample within d (half
// a second's slack for the ticker) divided by that sample's time.
func meanCPU(samples []Sample, d time.Duration) float64 {
	var last Sample
	for _, smp := range samples {
		if smp.T > d.Seconds()+0.5 {
			break
		}
		last = smp
	}
	if last.T <= 0 {
		return 0
	}
	return last.SimCPUTotal / last.T
}

// Series are a leg's per-second lines for the charts.
type Series struct {
	T                                        []float64 // seconds since the leg's start
	SimCPU, GuardCPU, Watchers, Queued, Held []float64
	// StormReady and StormFailed count the hot repository's launches that
	// had ended ready, or failed or errored, by each second.
	StormReady, StormFailed []float64
	// BackgroundP99 is the p99 time to ready of the background launches
	// that got ready in the last p99 window, NaN when none did.
	BackgroundP99 []float64
}

// series computes a leg's Series at each of its samples.
func series(leg Leg, p99Window time.Duration) Series {
	var out Series
	type end struct {
		at    float64 // seconds since the leg's start
		ready bool
		ttr   float64
	}
	ends := func(rs []launchstorm.Result) []end {
		var es []end
		for _, r := range rs {
			if r.Started.IsZero() {
				continue // never started
			}
			es = append(es, end{at: r.Started.Add(r.Duration).Sub(leg.Start).Seconds(),
				ready: r.Outcome == launchstorm.OutcomeReady, ttr: r.TimeToReady.Seconds()})
		}
		return es
	}
	storm := ends(leg.Summary.Results)
	var bg []end
	if leg.Summary.Mix != nil {
		bg = ends(leg.Summary.Mix.Results)
	}
	for _, smp := range leg.Samples {
		t := smp.T
		out.T = append(out.T, t)
		out.SimCPU = append(out.SimCPU, smp.SimCPU)
		out.GuardCPU = append(out.GuardCPU, smp.GuardCPU)
		w, q := float64(smp.Watchers), float64(smp.Queued)
		if !smp.StatsOK {
			w, q = math.NaN(), math.NaN() // a gap in the chart, not a false zero
		}
		out.Watchers = append(out.Watchers, w)
		out.Queued = append(out.Queued, q)
		out.Held = append(out.Held, float64(smp.Held))
		var ready, failed float64
		for _, e := range storm {
			if e.at <= t {
				if e.ready {
					ready++
				} else {
					failed++
				}
			}
		}
		out.StormReady = append(out.StormReady, ready)
		out.StormFailed = append(out.StormFailed, failed)
		var ttr []float64
		for _, e := range bg {
			if e.ready && e.at <= t && e.at > t-p99Window.Seconds() {
				ttr = append(ttr, e.ttr)
			}
		}
		slices.Sort(ttr)
		p99 := math.NaN()
		if len(ttr) > 0 {
			p99 = launchstorm.Percentile(ttr, 99)
		}
		out.BackgroundP99 = append(out.BackgroundP99, p99)
	}
	return out
}

// Target is one of the targets, checked on the guarded storm
// against the guarded no-storm baseline of the same run.
type Target struct {
	What     string
	Want     string
	Baseline string
	Got      string
	Met      bool
}

// Tolerance is the targets' "within 10 %" of a no-storm baseline.
const Tolerance = 0.10

// targets checks a guarded storm g against its no-storm baseline b.
func targets(b, g Figures) []Target {
	within := func(got, base float64) bool { return got <= base*(1+Tolerance) }
	return []Target{
		{
			What: "upstream build watchers for the hot repository", Want: "≤ 1",
			Baseline: fmt.Sprint(b.PeakWatchers), Got: fmt.Sprint(g.PeakWatchers), Met: g.PeakWatchers <= 1,
		},
		{
			What: "background p99 time to ready", Want: "within 10 % of no storm",
			Baseline: fmt.Sprintf("%.2f s", b.BackgroundP99),
			Got:      fmt.Sprintf("%.2f s (%+.1f %%)", g.BackgroundP99, pctChange(g.BackgroundP99, b.BackgroundP99)),
			Met:      g.BackgroundReady == g.BackgroundClients && within(g.BackgroundP99, b.BackgroundP99),
		},
		{
			What: "storm launches ready or told when to retry", Want: "all",
			Baseline: fmt.Sprintf("%d/%d", b.StormReady+b.StormRetry, b.StormClients),
			Got:      fmt.Sprintf("%d/%d (%d ready, %d told to retry)", g.StormReady+g.StormRetry, g.StormClients, g.StormReady, g.StormRetry),
			Met:      g.StormClients > 0 && g.StormReady+g.StormRetry == g.StormClients,
		},
		{
			What: "simulator CPU over the window", Want: "within 10 % of no storm",
			Baseline: fmt.Sprintf("%.3f cores", b.SimCPU),
			Got:      fmt.Sprintf("%.3f cores (%+.1f %%)", g.SimCPU, pctChange(g.SimCPU, b.SimCPU)),
			Met:      within(g.SimCPU, b.SimCPU),
		},
		{
			What: "simulator CPU while the hot repository builds", Want: "within 10 % of no storm",
			Baseline: fmt.Sprintf("%.3f cores", b.SimCPUBuild),
			Got:      fmt.Sprintf("%.3f cores (%+.1f %%)", g.SimCPUBuild, pctChange(g.SimCPUBuild, b.SimCPUBuild)),
			Met:      within(g.SimCPUBuild, b.SimCPUBuild),
		},
	}
}

func pctChange(got, base float64) float64 {
	if base == 0 {
		return math.Inf(1)
	}
	return (got/base - 1) * 100
}
