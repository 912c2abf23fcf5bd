package replay

import (
	"context"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/xds/envoyproc"
)

// buildBinaries builds the simulator and binderguard the replay starts.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/binderguard/binderguard/cmd/fakebinder", "github.com/binderguard/binderguard/cmd/binderguard").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestScaledReplay is `make replay` at a tenth of its size, as `make test`
// runs it: 100 launches of a repository that builds for 5 s, straight and
// through binderguard. It asserts what must hold on any machine however
// loaded, never a timing ratio: straight at the simulator the storm's
// launches become build watchers; through binderguard there is one, every
// launch is ready or told when to retry, the background all gets ready,
// and the report and its charts are written. With stale while building,
// the new commit's build still has one watcher, and most launches are
// ready with the last good commit without being held behind the build.
func TestScaledReplay(t *testing.T) {
	envoy, err := envoyproc.Find()
	if err != nil {
		t.Fatalf("the replay needs a real Envoy: %v", err)
	}
	bin := buildBinaries(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	sc := Scaled()
	rep, err := Run(ctx, Config{Scenario: sc, Bin: bin, Envoy: envoy, Out: out, Command: "go test ./test/replay",
		Progress: func(format string, a ...any) { t.Logf(format, a...) }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	dBase, direct, gBase, guarded, stale := rep.Figures[0], rep.Figures[1], rep.Figures[2], rep.Figures[3], rep.Figures[4]

	// The incident is reproduced: without the gate the launches arriving
	// during the build watch it.
	if direct.PeakWatchers < int64(sc.Launches/2) {
		t.Errorf("straight at the simulator: peak build watchers %d, want most of the %d launches", direct.PeakWatchers, sc.Launches)
	}
	if direct.SimCPU <= 0 {
		t.Errorf("straight at the simulator: simulator CPU %v, want the watchers' burn to show", direct.SimCPU)
	}
	// With stale while building the peak is over commit A's build before
	// the window too: each had one watcher at most.
	for _, f := range []Figures{dBase, gBase, guarded, stale} {
		if f.PeakWatchers > 1 || f.BuildsStarted != 1 {
			t.Errorf("%s: peak build watchers %d, builds in the window %d, want at most 1 watcher of 1 build", f.Kind, f.PeakWatchers, f.BuildsStarted)
		}
	}
	for _, f := range rep.Figures {
		if f.StormReady+f.StormRetry != f.StormClients || f.StormErrors != 0 {
			t.Errorf("%s: %d ready + %d told to retry of %d launches (%d failed without, %d errors), want all",
				f.Kind, f.StormReady, f.StormRetry, f.StormClients, f.StormFailed, f.StormErrors)
		}
		if f.BackgroundClients == 0 || f.BackgroundReady != f.BackgroundClients {
			t.Errorf("%s: background %d/%d ready, want all", f.Kind, f.BackgroundReady, f.BackgroundClients)
		}
		if f.DistinctTokens != f.StormReady {
			t.Errorf("%s: %d distinct tokens for %d ready launches", f.Kind, f.DistinctTokens, f.StormReady)
		}
	}
	if guarded.PeakHeld == 0 {
		t.Errorf("through binderguard: the gate never held a launch")
	}

	// Stale while building: most launches get commit A while B builds, on
	// their own launch, never held behind the build; the leader, at least,
	// builds B and gets it.
	if stale.StormReadyStale <= sc.Launches/2 || stale.StormReadyNew < 1 || stale.StormReadyStale+stale.StormReadyNew != stale.StormReady {
		t.Errorf("%s: %d ready with A, %d with B of %d ready; want most with A and the leader with B", stale.Kind, stale.StormReadyStale, stale.StormReadyNew, stale.StormReady)
	}
	if stale.StaleLaunches < int64(stale.StormReadyStale) {
		t.Errorf("%s: the gate counted %d stale launches, but %d got ready with A", stale.Kind, stale.StaleLaunches, stale.StormReadyStale)
	}
	for _, r := range rep.Legs[4].Summary.Results {
		if readyWith(r, commitA) && (slices.Contains(r.Phases, sse.PhaseBuilding) || slices.Contains(r.Phases, sse.PhaseFetching)) {
			t.Errorf("%s: launch %d got ready with A after a build log (phases %v): it was held behind B's build", stale.Kind, r.Index, r.Phases)
			break
		}
	}
	for i, leg := range rep.Legs {
		ok := 0
		for _, s := range leg.Samples {
			if s.StatsOK {
				ok++
			}
		}
		if min := int(sc.Window.Seconds()) / 2; ok < min {
			t.Errorf("%s: %d samples of the simulator's stats, want at least %d", runOrder[i], ok, min)
		}
	}
	for _, ts := range [][]Target{rep.Targets, rep.StaleTargets} {
		if len(ts) < 3 || !ts[0].Met || !ts[2].Met {
			t.Errorf("targets %+v: watchers and ready-or-retry must be met", ts)
		}
	}

	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Charts) != 4 {
		t.Errorf("%d charts, want 4", len(rep.Charts))
	}
	for _, c := range rep.Charts {
		if !strings.Contains(string(md), fmt.Sprintf("](%s)", c.File)) {
			t.Errorf("REPLAY.md does not show %s", c.File)
		}
		f, err := os.Open(filepath.Join(out, c.File))
		if err != nil {
			t.Fatal(err)
		}
		cfg, format, err := image.DecodeConfig(f)
		f.Close()
		if err != nil || format != "png" || cfg.Width < 200 || cfg.Height < 200 {
			t.Errorf("%s: %s %dx%d, %v; want a PNG chart", c.File, format, cfg.Width, cfg.Height, err)
		}
	}
	t.Logf("report:\n%s", md)
}
