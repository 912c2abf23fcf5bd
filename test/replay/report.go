package replay

import (
	"fmt"
	"strings"
	"time"
)

// renderMarkdown writes the report: targets, the side-by-side table, the
// charts with the command that reproduces them, and how it was measured.
func renderMarkdown(r *Report, command string) string {
	var b strings.Builder
	sc := r.Scenario
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# The 2018-07-30 incident, replayed\n\n")
	p("<!-- Written by %s; do not edit by hand. -->\n\n", command)
	p("A popular repository (`%s`) starts a %v build; %s launches of it arrive over %v while other, already-built "+
		"repositories launch in the background (%s, one launch each every %v for %v). The same storm runs straight at "+
		"the BinderHub simulator, as on mybinder.org in 2018, and through Envoy + binderguard (`binderguard local` with "+
		"the shipped default LaunchPolicy), each next to a no-storm baseline of the same run: the same build and "+
		"background mix with one launch of the repository. Every leg starts fresh processes and is measured over the "+
		"same %v window.\n\n",
		sc.HotSpec, sc.BuildTime, thousands(sc.Launches), sc.Ramp, codeList(sc.Background), sc.BackgroundInterval, sc.Window, sc.Window)
	p("A fifth leg runs the storm through binderguard again with `staleWhileBuilding` on (the same policy otherwise), " +
		"as 2018 began: the repository's `HEAD` was at commit A, built and launched, when a push moved it to commit B, " +
		"whose build is the storm's; launches may then get A while B builds (see [Stale while building](#stale-while-building)).\n\n")
	p("Reproduce everything on this page, charts included: `%s` (scenario %q).\n\n", command, sc.Name)

	p("## Targets\n\nChecked on the storms through binderguard, without and with stale while building, against the no-storm baseline through binderguard.\n\n")
	p("| target | wanted | no storm | storm | met | storm, stale while building | met |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, t := range r.Targets {
		st := Target{Got: "—"}
		if i < len(r.StaleTargets) {
			st = r.StaleTargets[i]
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", t.What, t.Want, t.Baseline, t.Got, mark(t.Met), st.Got, markIf(st))
	}

	p("\nThe CPU targets read the simulator over two spans. Over the whole window, the storm's users are launched " +
		"through binderguard too: every held launch becomes its own request to BinderHub once the image is built " +
		"(released at the policy's 20/s), and each one is a server started, which the baseline's single launch does not " +
		"pay for. While the repository builds, the span in which the binder pod saturated in 2018, the simulator sees " +
		"only the one build watcher and the background mix; with stale while building it also launches the storm's " +
		"users with commit A as they arrive, which is where their launches' CPU goes instead.\n")
	p("\n## Side by side\n\n")
	p("| |")
	for _, k := range runOrder {
		if k.Storm {
			p(" **%s** |", k)
		} else {
			p(" %s |", k)
		}
	}
	p("\n| ---%s |\n", strings.Repeat(" | ---:", len(runOrder)))
	f := r.Figures
	row := func(name string, cell func(Figures) string) {
		p("| %s |", name)
		for _, x := range f {
			p(" %s |", cell(x))
		}
		p("\n")
	}
	staleOnly := func(cell func(Figures) string) func(Figures) string {
		return func(x Figures) string {
			if !x.Kind.Stale {
				return "—"
			}
			return cell(x)
		}
	}
	row("launches of the hot repository", func(x Figures) string { return thousands(x.StormClients) })
	row("… ready", func(x Figures) string { return thousands(x.StormReady) })
	row("… ready with the last good commit (A, stale)", staleOnly(func(x Figures) string { return thousands(x.StormReadyStale) }))
	row("… ready with the new commit (B)", staleOnly(func(x Figures) string { return thousands(x.StormReadyNew) }))
	row("… failed, told when to retry (Retry-After)", func(x Figures) string { return thousands(x.StormRetry) })
	row("… failed without a retry hint", func(x Figures) string { return thousands(x.StormFailed) })
	row("… errors and timeouts", func(x Figures) string { return thousands(x.StormErrors) })
	row("… p50 / p99 time to ready", func(x Figures) string { return fmt.Sprintf("%.1f / %.1f s", x.StormP50, x.StormP99) })
	row("distinct tokens (one server per user)", func(x Figures) string { return thousands(x.DistinctTokens) })
	row("**peak build watchers inside the simulator**", func(x Figures) string { return fmt.Sprintf("**%s**", thousands(int(x.PeakWatchers))) })
	row("peak requests queued silently for a pool slot", func(x Figures) string { return thousands(int(x.PeakQueued)) })
	row("peak launches held at the gate, with progress", func(x Figures) string { return thousands(int(x.PeakHeld)) })
	row("launches served stale, by the gate's count; held after all", staleOnly(func(x Figures) string {
		return fmt.Sprintf("%s; %s", thousands(int(x.StaleLaunches)), thousands(int(x.StaleFallbacks)))
	}))
	row("builds started in the window", func(x Figures) string { return thousands(int(x.BuildsStarted)) })
	row("launches slowed by the load (simulator)", func(x Figures) string { return thousands(int(x.SlowedLaunches)) })
	row("background launches ready", func(x Figures) string { return fmt.Sprintf("%d/%d", x.BackgroundReady, x.BackgroundClients) })
	row("**background p99 time to ready**", func(x Figures) string { return fmt.Sprintf("**%.2f s**", x.BackgroundP99) })
	row("background p50 time to ready", func(x Figures) string { return fmt.Sprintf("%.2f s", x.BackgroundP50) })
	row("**simulator CPU, mean over the window**", func(x Figures) string { return fmt.Sprintf("**%.3f cores**", x.SimCPU) })
	row("simulator CPU, mean while the hot repository builds", func(x Figures) string { return fmt.Sprintf("%.3f cores", x.SimCPUBuild) })
	row("simulator CPU, busiest second", func(x Figures) string { return fmt.Sprintf("%.2f cores", x.SimCPUPeak) })
	row("binderguard + Envoy CPU, mean", func(x Figures) string {
		if x.Kind.Mode == Direct {
			return "—"
		}
		return fmt.Sprintf("%.3f cores", x.GuardCPU)
	})

	renderStale(p, r)
	p("\n## Charts\n\nEach chart comes from the run above; `%s` redraws all of them from a new run.\n\n", command)
	for _, c := range r.Charts {
		p("### %s\n\n![%s](%s)\n\n%s\n\nReproduce: `%s` (writes `%s`).\n\n", c.Title, c.Title, c.File, c.Caption, command, c.File)
	}

	p("## How it was measured\n\n")
	m := r.Machine
	p("- Taken %s on %d CPUs (%s); load average (1, 5, 15 min) %s before, %s after.", r.Taken.Format(time.DateOnly), m.CPUs, m.Model, m.LoadBefore, m.LoadAfter)
	if m.Note != "" {
		p(" %s", m.Note)
	}
	p("\n")
	p("- Simulator: `bin/fakebinder --build-time %v --launch-time %v --burn-cpu %v --built-specs '%s'`, otherwise BinderHub's "+
		"defaults: a 64-worker build pool (2 × `concurrent_build_limit` 32), in which each request's pod watch takes a "+
		"worker and, once the pod runs, its log stream another, queued behind everything before it; past the pool new "+
		"requests wait silently after `waiting`. Each busy worker burns half of %v of real CPU a second "+
		"(BinderHub's pod watch and log stream threads), so the full pool burns %.2f cores: the saturated binder pod. "+
		"Its launches slow down in proportion to the watchers beyond 32 (its load model); requests queued for a slot "+
		"slow launches there but burn no real CPU, as BinderHub's idle executor queue does not.\n",
		sc.BuildTime, sc.LaunchTime, sc.BurnCPU, builtSpecs, sc.BurnCPU, 32*sc.BurnCPU.Seconds())
	p("- CPU: utime + stime of the simulator process from `/proc/<pid>/stat` every second; the mean is its CPU time over "+
		"the %v window divided by the window. binderguard + Envoy: the `binderguard local` process and its Envoy child.\n", sc.Window)
	p("- Launches: `test/launchstorm` (the official JS client's behaviour, no retries); the storm's launches start evenly "+
		"over %v; each launch times out after %v. A launch counts as told when to retry when it ended with a `failed` "+
		"event on a response carrying `Retry-After`.\n", sc.Ramp, sc.Timeout)
	p("- Background p99 in the chart: over the launches that got ready in the last %v; in the tables: over the whole window.\n", sc.P99Window)
	p("- binderguard: the shipped default LaunchPolicy (collapse on, held launches released at 20/s, burst 20); no ban. " +
		"The stale-while-building leg adds `staleWhileBuilding: {enabled: true}` (maxAge the default 168h) to it.\n")
	p("- Stale while building, before its window: `POST /_sim/refs` moves `HEAD` to commit A (`%s`, a %v build), one "+
		"launch of `HEAD` through binderguard builds it and gets ready with A, so the gate has seen A ready; then "+
		"the leg waits %v for the gate's built window to end (launches of a repository seen built a moment ago pass "+
		"straight through for %v, and a push inside that window costs one more watcher of the new build, the passed "+
		"launch that finds it), and `POST /_sim/refs` moves `HEAD` to commit B (`%s`, a %v build): the push. The window "+
		"starts right after it. A launch counts as ready with A when its `ready` event's `binder_persistent_request` "+
		"names A. Peak build watchers are over the simulator's life, A's build (one watcher, before the window) included.\n",
		commitA[:7], sc.BuildTime/10, gateBuiltTTL+2*time.Second, gateBuiltTTL, commitB[:7], sc.BuildTime)
	return b.String()
}

// renderStale writes the stale-while-building section: the storm's time
// to ready without and with it, what the launches got, and the cost.
func renderStale(p func(string, ...any), r *Report) {
	g, st := r.Figures[3], r.Figures[4]
	p("\n## Stale while building\n\n")
	p("The storm through binderguard, without and with `staleWhileBuilding` on. Without it every launch is held " +
		"until the new commit is built and then released at 20/s; with it, a launch that arrives while commit B builds " +
		"is sent to BinderHub as its own launch of commit A, the last commit the gate saw ready, and is told so in its " +
		"first event. The first such launch of the build asks BinderHub alone (the probe) and the others wait for its " +
		"answer; it launches A's image, which exists, so it is no build watcher.\n\n")
	p("| storm through binderguard | without | with stale while building |\n| --- | ---: | ---: |\n")
	line := func(name string, cell func(Figures) string) { p("| %s | %s | %s |\n", name, cell(g), cell(st)) }
	line("**p50 / p99 time to ready**", func(x Figures) string { return fmt.Sprintf("**%.1f / %.1f s**", x.StormP50, x.StormP99) })
	line("ready with the last good commit A / with the new commit B", func(x Figures) string {
		if !x.Kind.Stale {
			return fmt.Sprintf("— / %s", thousands(x.StormReady))
		}
		return fmt.Sprintf("%s / %s", thousands(x.StormReadyStale), thousands(x.StormReadyNew))
	})
	line("told when to retry; failed otherwise", func(x Figures) string {
		return fmt.Sprintf("%s; %s", thousands(x.StormRetry), thousands(x.StormFailed+x.StormErrors))
	})
	line("peak build watchers inside the simulator", func(x Figures) string { return thousands(int(x.PeakWatchers)) })
	line("peak launches held at the gate", func(x Figures) string { return thousands(int(x.PeakHeld)) })
	line("background p99 time to ready", func(x Figures) string { return fmt.Sprintf("%.2f s", x.BackgroundP99) })
	line("simulator CPU, mean over the window / while B builds", func(x Figures) string {
		return fmt.Sprintf("%.3f / %.3f cores", x.SimCPU, x.SimCPUBuild)
	})
	line("binderguard + Envoy CPU, mean", func(x Figures) string { return fmt.Sprintf("%.3f cores", x.GuardCPU) })
	p("\nThe launches ready with B are the leader, which builds B and waits for it, the launches that reached the gate " +
		"before the leader's first event showed the build (the gate holds those: letting them through could be a second " +
		"watcher) and any stale launch held after all. The trade-off: those ready with A got the previous commit, and " +
		"were told so, for as long as B builds.\n")
}

// markIf marks a target, or leaves a dash for one not checked.
func markIf(t Target) string {
	if t.What == "" {
		return "—"
	}
	return mark(t.Met)
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// thousands formats n with a comma every three digits, as the README does.
func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func codeList(specs []string) string {
	q := make([]string, len(specs))
	for i, s := range specs {
		q[i] = "`" + s + "`"
	}
	return strings.Join(q, ", ")
}
