package replay

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/launchstorm"
)

var t0 = time.Date(2018, 7, 30, 11, 20, 0, 0, time.UTC)

func ready(startS, ttrS float64) launchstorm.Result {
	d := time.Duration(ttrS * float64(time.Second))
	return launchstorm.Result{Outcome: launchstorm.OutcomeReady, Started: t0.Add(time.Duration(startS * float64(time.Second))),
		TimeToReady: d, Duration: d, Requests: 1}
}

// testLeg is a guarded storm of four launches: two ready, one shed with a
// Retry-After, one failed without, and two background launches.
func testLeg() Leg {
	storm := []launchstorm.Result{
		ready(0, 3), ready(0.5, 4),
		{Outcome: launchstorm.OutcomeFailed, Started: t0, Duration: time.Second, RetryAfter: "10", StatusCode: 429, Requests: 1},
		{Outcome: launchstorm.OutcomeFailed, Started: t0, Duration: 2 * time.Second, StatusCode: 500, Requests: 1},
	}
	bg := []launchstorm.Result{ready(0, 1), ready(2, 2)}
	s := launchstorm.Summarize(storm)
	m := launchstorm.Summarize(bg)
	s.Mix = &m
	return Leg{
		Kind: LegKind{Mode: Guarded, Storm: true}, Start: t0, Summary: s,
		Sim: fakebinder.Stats{PeakBuildWatchers: 1, PeakQueued: 0, BuildsStarted: 1},
		Samples: []Sample{
			{T: 1, SimCPU: 0.5, SimCPUTotal: 0.5, GuardCPU: 0.2, Watchers: 1, Held: 3, StatsOK: true},
			{T: 2, SimCPU: 0.1, SimCPUTotal: 0.6, GuardCPU: 0.4, Watchers: 1, Held: 1, StatsOK: true},
			{T: 3, SimCPU: 0.3, SimCPUTotal: 0.9, GuardCPU: 0, StatsOK: true},
			{T: 4, SimCPU: 0.9, SimCPUTotal: 1.8, GuardCPU: 0},
		},
	}
}

func TestFigures(t *testing.T) {
	got := figures(testLeg(), 3*time.Second, 2*time.Second)
	want := Figures{
		Kind: LegKind{Mode: Guarded, Storm: true}, StormClients: 4, StormReady: 2, StormRetry: 1, StormFailed: 1,
		StormP50: 3, StormP99: 4, PeakWatchers: 1, BuildsStarted: 1, PeakHeld: 3,
		BackgroundClients: 2, BackgroundReady: 2, BackgroundP50: 1, BackgroundP99: 2,
		// The window ends at 3 s: the fourth sample is outside it.
		SimCPU: 0.3, SimCPUPeak: 0.5, GuardCPU: 0.2, SimCPUBuild: 0.3,
	}
	if d := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("figures (-want +got):\n%s", d)
	}
}

func TestSeries(t *testing.T) {
	got := series(testLeg(), 1500*time.Millisecond)
	nan := math.NaN()
	want := Series{
		T: []float64{1, 2, 3, 4}, SimCPU: []float64{0.5, 0.1, 0.3, 0.9}, GuardCPU: []float64{0.2, 0.4, 0, 0},
		// The last second's stats were not read: a gap, not a zero.
		Watchers: []float64{1, 1, 0, nan}, Queued: []float64{0, 0, 0, nan}, Held: []float64{3, 1, 0, 0},
		// Ready at 3 s and 4.5 s; failed at 1 s and 2 s.
		StormReady:  []float64{0, 0, 1, 1},
		StormFailed: []float64{1, 2, 2, 2},
		// Background ready at 1 s (1 s) and 4 s (2 s); window 1.5 s.
		BackgroundP99: []float64{1, 1, nan, 2},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) })); d != "" {
		t.Errorf("series (-want +got):\n%s", d)
	}
}

func TestTargets(t *testing.T) {
	base := Figures{StormClients: 1, StormReady: 1, PeakWatchers: 1, BackgroundClients: 10, BackgroundReady: 10,
		BackgroundP99: 2, SimCPU: 0.1, SimCPUBuild: 0.05}
	tests := map[string]struct {
		guarded Figures
		met     []bool
	}{
		"everything within its bound": {
			guarded: Figures{StormClients: 10, StormReady: 8, StormRetry: 2, PeakWatchers: 1, BackgroundClients: 10,
				BackgroundReady: 10, BackgroundP99: 2.2, SimCPU: 0.11, SimCPUBuild: 0.05},
			met: []bool{true, true, true, true, true},
		},
		"a second watcher, a slower background, a launch left without advice, more CPU": {
			guarded: Figures{StormClients: 10, StormReady: 8, StormRetry: 1, StormFailed: 1, PeakWatchers: 2,
				BackgroundClients: 10, BackgroundReady: 10, BackgroundP99: 2.3, SimCPU: 0.12, SimCPUBuild: 0.06},
			met: []bool{false, false, false, false, false},
		},
		"a background launch that never got ready fails the p99 target however fast the rest were": {
			guarded: Figures{StormClients: 10, StormReady: 10, PeakWatchers: 1, BackgroundClients: 10,
				BackgroundReady: 9, BackgroundP99: 1, SimCPU: 0.1, SimCPUBuild: 0.05},
			met: []bool{true, false, true, true, true},
		},
		"no storm launches at all is not all of them": {
			guarded: Figures{PeakWatchers: 0, BackgroundClients: 10, BackgroundReady: 10, BackgroundP99: 2, SimCPU: 0.1, SimCPUBuild: 0.05},
			met:     []bool{true, true, false, true, true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var met []bool
			for _, tg := range targets(base, tc.guarded) {
				met = append(met, tg.Met)
			}
			if d := cmp.Diff(tc.met, met); d != "" {
				t.Errorf("met (-want +got):\n%s", d)
			}
		})
	}
}

func TestRenderMarkdown(t *testing.T) {
	leg := testLeg()
	f := figures(leg, 3*time.Second, 2*time.Second)
	sf := figures(staleLeg(), 3*time.Second, 2*time.Second)
	r := &Report{
		Scenario: Scaled(), Figures: [len(runOrder)]Figures{f, f, f, f, sf}, Targets: targets(f, f), StaleTargets: targets(f, sf),
		Charts: []Chart{{File: "replay-cpu.png", Title: "CPU", Caption: "the caption"}},
		Taken:  t0, Machine: Machine{CPUs: 2, Model: "test CPU", LoadBefore: "1 2 3", LoadAfter: "4 5 6", Note: "Shared."},
	}
	md := renderMarkdown(r, "make replay")
	for _, want := range []string{
		"| upstream build watchers for the hot repository | ≤ 1 | 1 | 1 | ✔ | 1 | ✔ |",
		"| … failed, told when to retry (Retry-After) | 1 | 1 | 1 | 1 | 0 |",
		"| | no storm, straight to the simulator | **storm, straight to the simulator** | no storm, through binderguard | **storm, through binderguard** | **storm, through binderguard, stale while building** |",
		"| … ready with the last good commit (A, stale) | — | — | — | — | 2 |",
		"| … ready with the new commit (B) | — | — | — | — | 1 |",
		"| launches served stale, by the gate's count; held after all | — | — | — | — | 2; 1 |",
		"| **p50 / p99 time to ready** | **3.0 / 4.0 s** | **0.5 / 6.0 s** |",
		"| ready with the last good commit A / with the new commit B | — / 2 | 2 / 1 |",
		"![CPU](replay-cpu.png)\n\nthe caption\n\nReproduce: `make replay` (writes `replay-cpu.png`).",
		"Taken 2018-07-30 on 2 CPUs (test CPU); load average (1, 5, 15 min) 1 2 3 before, 4 5 6 after. Shared.",
		"`bin/fakebinder --build-time 5s --launch-time 500ms --burn-cpu 10ms",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestScenarios(t *testing.T) {
	for _, sc := range []Scenario{Full(), Scaled()} {
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
	bad := map[string]func(*Scenario){
		"a hot spec the simulator has built": func(s *Scenario) { s.HotSpec = "gh/binder-examples/conda/HEAD" },
		"no launches":                        func(s *Scenario) { s.Launches = 0 },
		"a window shorter than the build":    func(s *Scenario) { s.Window = s.BuildTime / 2 },
		"a background spec not built":        func(s *Scenario) { s.Background = []string{"gh/a/b/HEAD"} },
		"no background interval":             func(s *Scenario) { s.BackgroundInterval = 0 },
	}
	for name, f := range bad {
		sc := Scaled()
		f(&sc)
		if sc.Validate() == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

// The replay runs binderguard with the shipped defaults, not with a policy
// tuned for it.
func TestReplayPolicyIsTheShippedDefault(t *testing.T) {
	read := func(b []byte) map[string]any {
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		spec := m["spec"].(map[string]any)
		delete(spec, "build") // build pod resources: the webhook's, not the gate's
		return m
	}
	shipped, err := os.ReadFile("../../manifests/examples/launchpolicy-default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(read(shipped), read(policyYAML)); d != "" {
		t.Errorf("policy.yaml differs from the shipped default (-shipped +replay):\n%s", d)
	}
}

// staleLeg is a stale-while-building storm of three launches: two ready
// with commit A at once, one (the leader) with B after the build. Commit
// A's build before the window counts in PreSim.
func staleLeg() Leg {
	withCommit := func(r launchstorm.Result, c string) launchstorm.Result {
		r.Ready.BinderPersistentRequest = "v2/gh/jupyterlab/jupyterlab-demo/" + c
		return r
	}
	storm := []launchstorm.Result{withCommit(ready(0, 6), commitB), withCommit(ready(0.5, 0.5), commitA), withCommit(ready(1, 0.4), commitA)}
	s := launchstorm.Summarize(storm)
	m := launchstorm.Summarize([]launchstorm.Result{ready(0, 1)})
	s.Mix = &m
	return Leg{
		Kind: LegKind{Mode: Guarded, Storm: true, Stale: true}, Start: t0, Summary: s, StaleCommit: commitA,
		PreSim:  fakebinder.Stats{PeakBuildWatchers: 1, BuildsStarted: 1},
		Sim:     fakebinder.Stats{PeakBuildWatchers: 1, BuildsStarted: 2},
		Gate:    GateCounters{StaleLaunches: 2, StaleFallbacks: 1},
		Samples: []Sample{{T: 1, Watchers: 1, StatsOK: true}},
	}
}

func TestFiguresOfAStaleLeg(t *testing.T) {
	got := figures(staleLeg(), 3*time.Second, 2*time.Second)
	if got.StormReady != 3 || got.StormReadyStale != 2 || got.StormReadyNew != 1 {
		t.Errorf("ready %d: %d with A, %d with B; want 3: 2 and 1", got.StormReady, got.StormReadyStale, got.StormReadyNew)
	}
	if got.BuildsStarted != 1 || got.PeakWatchers != 1 {
		t.Errorf("builds in the window %d, peak watchers %d; want 1 (B; A's was before) and 1", got.BuildsStarted, got.PeakWatchers)
	}
	if got.StaleLaunches != 2 || got.StaleFallbacks != 1 {
		t.Errorf("gate counters %d, %d; want 2, 1", got.StaleLaunches, got.StaleFallbacks)
	}
	// A leg that is not stale splits nothing, whatever its launches got.
	plain := staleLeg()
	plain.StaleCommit = ""
	if f := figures(plain, 3*time.Second, 2*time.Second); f.StormReadyStale != 0 || f.StormReadyNew != 0 {
		t.Errorf("a leg without a stale commit: %d with A, %d with B; want 0, 0", f.StormReadyStale, f.StormReadyNew)
	}
}

func TestReadyWith(t *testing.T) {
	r := ready(0, 1)
	r.Ready.BinderPersistentRequest = "v2/gh/jupyterlab/jupyterlab-demo/" + commitA
	failed := r
	failed.Outcome = launchstorm.OutcomeFailed
	tests := map[string]struct {
		r      launchstorm.Result
		commit string
		want   bool
	}{
		"ready with the commit":          {r, commitA, true},
		"ready with another":             {r, commitB, false},
		"failed, whatever it names":      {failed, commitA, false},
		"no commit asked: never":         {r, "", false},
		"a commit that is only a suffix": {r, commitA[1:], false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := readyWith(tc.r, tc.commit); got != tc.want {
				t.Errorf("readyWith = %v, want %v", got, tc.want)
			}
		})
	}
}

// The stale leg's policy is the replay's with staleWhileBuilding on and
// nothing else changed.
func TestStalePolicyIsTheReplayPolicyWithStaleOn(t *testing.T) {
	var plain, stale map[string]any
	b, err := stalePolicy()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(policyYAML, &plain); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &stale); err != nil {
		t.Fatal(err)
	}
	if got := stale["spec"].(map[string]any)["staleWhileBuilding"]; !cmp.Equal(got, map[string]any{"enabled": true}) {
		t.Errorf("staleWhileBuilding = %v, want {enabled: true}", got)
	}
	delete(stale["spec"].(map[string]any), "staleWhileBuilding")
	if d := cmp.Diff(plain, stale); d != "" {
		t.Errorf("the stale policy differs otherwise (-replay +stale):\n%s", d)
	}
}
