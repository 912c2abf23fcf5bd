package replay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Config says how to run a replay and where to write its report.
type Config struct {
	Scenario Scenario
	// Bin is the directory holding the fakebinder and binderguard
	// binaries (`make build` writes them to bin/).
	Bin string
	// Envoy is the Envoy binary `binderguard local` runs.
	Envoy string
	// Out is the directory REPLAY.md and its PNGs are written to.
	Out string
	// Command is the command line that reproduces the report, quoted in it.
	Command string
	// Note is added to the report's description of the machine.
	Note string
	// Progress, when set, receives one line per leg and every 10 s.
	Progress func(format string, a ...any)
}

// Report is what a replay measured.
type Report struct {
	Scenario Scenario
	// Legs and Figures are in runOrder.
	Legs    [len(runOrder)]Leg
	Figures [len(runOrder)]Figures
	// Targets are checked on the guarded storm, StaleTargets on the storm
	// with stale while building, both against the guarded baseline.
	Targets, StaleTargets []Target
	Charts                []Chart
	// Taken is when the replay began; Machine describes where.
	Taken   time.Time
	Machine Machine
}

// runOrder is the order of the legs: each baseline right before its
// storm, and last the guarded storm again with stale while building.
var runOrder = [...]LegKind{
	{Mode: Direct}, {Mode: Direct, Storm: true},
	{Mode: Guarded}, {Mode: Guarded, Storm: true},
	{Mode: Guarded, Storm: true, Stale: true},
}

// Run runs the legs one after another, then writes REPLAY.md and its
// charts into c.Out. It returns the report also when writing fails.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.Scenario.Validate(); err != nil {
		return nil, err
	}
	for _, b := range []string{"fakebinder", "binderguard"} {
		if _, err := os.Stat(filepath.Join(c.Bin, b)); err != nil {
			return nil, fmt.Errorf("the replay runs %s from %s (make build): %w", b, c.Bin, err)
		}
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	rep := &Report{Scenario: c.Scenario, Taken: time.Now().UTC(), Machine: describeMachine(c.Note)}
	env := legEnv{bin: c.Bin, envoy: c.Envoy, progress: c.Progress}
	for i, kind := range runOrder {
		c.Progress("leg %d/%d: %s", i+1, len(runOrder), kind)
		leg, err := runLeg(ctx, c.Scenario, kind, env)
		if err != nil {
			return rep, fmt.Errorf("leg %d/%d: %w", i+1, len(runOrder), err)
		}
		rep.Legs[i] = leg
		rep.Figures[i] = figures(leg, c.Scenario.Window, c.Scenario.BuildTime)
		f := rep.Figures[i]
		c.Progress("  done: storm %d/%d ready (%d with the last good commit), %d told to retry; p50/p99 %.1f/%.1fs; peak build watchers %d; background p99 %.2fs; simulator CPU %.3f cores",
			f.StormReady, f.StormClients, f.StormReadyStale, f.StormRetry, f.StormP50, f.StormP99, f.PeakWatchers, f.BackgroundP99, f.SimCPU)
	}
	rep.Machine.LoadAfter = loadAverage()
	rep.Targets = targets(rep.Figures[2], rep.Figures[3])
	rep.StaleTargets = targets(rep.Figures[2], rep.Figures[4])

	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return rep, fmt.Errorf("making %s: %w", c.Out, err)
	}
	var ss [len(runOrder)]Series
	for i, leg := range rep.Legs {
		ss[i] = series(leg, c.Scenario.P99Window)
	}
	charts, err := writeCharts(c.Out, ss)
	if err != nil {
		return rep, err
	}
	rep.Charts = charts
	md := renderMarkdown(rep, c.Command)
	if err := os.WriteFile(filepath.Join(c.Out, ReportFile), []byte(md), 0o644); err != nil {
		return rep, fmt.Errorf("writing the report: %w", err)
	}
	return rep, nil
}

// ReportFile is the report's name in Config.Out.
const ReportFile = "REPLAY.md"

// Machine describes where a replay ran: its figures depend on it.
type Machine struct {
	CPUs       int
	Model      string
	LoadBefore string // /proc/loadavg's 1, 5 and 15 minute averages
	LoadAfter  string
	Note       string
}

func describeMachine(note string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Model: "unknown CPU", LoadBefore: loadAverage(), Note: note}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
