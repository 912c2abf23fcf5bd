package replay

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/launchstorm"
)

// Mode is where a leg's launches go.
type Mode int

const (
	// Direct: straight at the simulator, as mybinder.org was in 2018.
	Direct Mode = iota
	// Guarded: through Envoy + binderguard (`binderguard local`).
	Guarded
)

func (m Mode) String() string {
	return [...]string{"straight to the simulator", "through binderguard"}[m]
}

// LegKind is one of a replay's legs.
type LegKind struct {
	Mode Mode
	// Storm: Scenario.Launches launches of the hot repository; otherwise
	// one, the no-storm baseline: the same build and background mix.
	Storm bool
	// Stale (a guarded storm only): the policy has staleWhileBuilding on,
	// and the hot repository's HEAD was at commit A, built and launched
	// through the gate, before it moves to commit B, whose build is the
	// storm's (see stalePrelude).
	Stale bool
}

func (k LegKind) String() string {
	switch {
	case k.Stale:
		return "storm, " + k.Mode.String() + ", stale while building"
	case k.Storm:
		return "storm, " + k.Mode.String()
	}
	return "no storm, " + k.Mode.String()
}

// Leg is what one leg measured.
type Leg struct {
	Kind LegKind
	// Start is when the storm and the background mix started.
	Start time.Time
	// Summary is launchstorm's: the hot repository's launches, with the
	// background mix in Summary.Mix.
	Summary launchstorm.Summary
	// Sim is the simulator's /_sim/stats at the end; PreSim at Start
	// (zero but for a stale leg, whose commit A was built before).
	Sim, PreSim fakebinder.Stats
	Samples     []Sample
	// StaleCommit is the commit a stale leg's launches may get instead of
	// the one building (empty for the other legs).
	StaleCommit string
	// Gate are binderguard's stale-while-building counters at the end
	// (guarded legs).
	Gate GateCounters
}

// GateCounters are binderguard's counters a leg reads at its end.
type GateCounters struct {
	// StaleLaunches: launches served the last good commit
	// (binderguard_stale_launches_total); StaleFallbacks: launches
	// admitted as stale and held after all
	// (binderguard_stale_fallbacks_total).
	StaleLaunches, StaleFallbacks int64
}

//go:embed policy.yaml
var policyYAML []byte

// stalePolicy is policyYAML with staleWhileBuilding enabled (its maxAge
// left to the default): the same shipped policy otherwise.
func stalePolicy() ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(policyYAML, &m); err != nil {
		return nil, fmt.Errorf("reading the replay's policy: %w", err)
	}
	spec, ok := m["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the replay's policy has no spec")
	}
	spec["staleWhileBuilding"] = map[string]any{"enabled": true}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("writing the stale-while-building policy: %w", err)
	}
	return b, nil
}

// The commits of the hot repository's HEAD in a stale leg: A before the
// storm, B from the push on.
const (
	commitA = "a5e1b7c0d2f4a6b8c0e2d4f6a8b0c2e4d6f8a0b2"
	commitB = "b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5"
)

// gateBuiltTTL is proxy/gate's Config.BuiltTTL default, which `binderguard
// local` runs with: launches of a spec seen built pass straight through
// for that long, and a push inside it costs a build watcher per launch
// already passed (TestPushDuringTheBuiltWindowCollapsesAgain).
const gateBuiltTTL = 60 * time.Second

// legEnv is where a leg's processes come from.
type legEnv struct {
	bin      string // directory holding fakebinder and binderguard
	envoy    string // Envoy binary, for binderguard local
	progress func(format string, a ...any)
}

// runLeg runs one leg with fresh processes and stops them before it
// returns.
func runLeg(ctx context.Context, sc Scenario, kind LegKind, env legEnv) (Leg, error) {
	leg := Leg{Kind: kind}
	simAddr, err := freeAddr()
	if err != nil {
		return leg, err
	}
	sim, err := start(ctx, "fakebinder", filepath.Join(env.bin, "fakebinder"), []string{
		"--listen", simAddr, "--build-time", sc.BuildTime.String(), "--launch-time", sc.LaunchTime.String(),
		"--built-specs", builtSpecs, "--burn-cpu", sc.BurnCPU.String(), "--log-level", "warn",
	}, nil)
	if err != nil {
		return leg, err
	}
	defer sim.stop()
	simURL := "http://" + simAddr
	if err := sim.waitAnswer(ctx, simURL+"/versions", "fakebinder", 30*time.Second); err != nil {
		return leg, err
	}
	smp := &sampler{sim: sim.pid(), statsURL: simURL + "/_sim/stats", hc: &http.Client{}}
	target := simURL

	var guard *proc
	if kind.Mode == Guarded {
		pol := policyYAML
		if kind.Stale {
			if pol, err = stalePolicy(); err != nil {
				return leg, err
			}
		}
		g, stop, url, metrics, err := startGuard(ctx, simURL, pol, env)
		if err != nil {
			return leg, err
		}
		defer stop()
		guard, target, smp.metricsURL = g, url, metrics
		smp.guard = append([]int{g.pid()}, childrenOf(g.pid())...)
	}
	if kind.Stale {
		if kind.Mode != Guarded || !kind.Storm {
			return leg, fmt.Errorf("%s: stale while building is a guarded storm's", kind)
		}
		if leg.PreSim, err = stalePrelude(ctx, sc, simURL, target, smp, env.progress); err != nil {
			return leg, fmt.Errorf("%s: %w", kind, err)
		}
		leg.StaleCommit = commitA
	}

	clients, ramp := 1, time.Duration(0)
	if kind.Storm {
		clients, ramp = sc.Launches, sc.Ramp
	}
	var mix []launchstorm.MixEntry
	for _, spec := range sc.Background {
		mix = append(mix, launchstorm.MixEntry{Spec: spec, Clients: sc.backgroundPerSpec(), Interval: launchstorm.Duration(sc.BackgroundInterval)})
	}

	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	leg.Start = time.Now()
	samples := make(chan []Sample, 1)
	go func() {
		samples <- smp.run(sctx, leg.Start, func(s Sample) {
			if env.progress == nil || int(s.T)%10 != 0 {
				return
			}
			if !s.StatsOK {
				env.progress("  %5.0fs  sim CPU %.2f cores  (simulator stats not read in time)", s.T, s.SimCPU)
				return
			}
			env.progress("  %5.0fs  sim CPU %.2f cores  build watchers %d  queued %d  held at the gate %d", s.T, s.SimCPU, s.Watchers, s.Queued, s.Held)
		})
	}()
	sum, err := launchstorm.Run(ctx, launchstorm.Config{
		URL: target, Spec: sc.HotSpec, Clients: clients, Ramp: ramp, Timeout: sc.Timeout,
		Mix: mix, StatsURL: smp.statsURL,
	})
	if err == nil {
		// Measure every leg over the whole window, also when its
		// launches ended earlier.
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(time.Until(leg.Start.Add(sc.Window + time.Second))):
		}
	}
	stopSampling()
	leg.Samples = <-samples
	if err != nil {
		return leg, fmt.Errorf("%s: %w", kind, err)
	}
	leg.Summary = sum
	if sum.StatsError != "" {
		return leg, fmt.Errorf("%s: reading the simulator's stats: %s", kind, sum.StatsError)
	}
	if err := json.Unmarshal(sum.SimStats, &leg.Sim); err != nil {
		return leg, fmt.Errorf("%s: reading the simulator's stats: %w", kind, err)
	}
	// A child that died mid-leg would make its figures meaningless.
	if err := sim.alive(); err != nil {
		return leg, fmt.Errorf("%s: %w", kind, err)
	}
	if guard != nil {
		if err := guard.alive(); err != nil {
			return leg, fmt.Errorf("%s: %w", kind, err)
		}
		if leg.Gate, err = smp.gateCounters(ctx); err != nil {
			return leg, fmt.Errorf("%s: reading binderguard's counters: %w", kind, err)
		}
	}
	return leg, nil
}

// stalePrelude sets a stale leg's stage before its window: the hot
// repository's HEAD is at commit A, which builds in a tenth of the
// scenario's build time and is launched once through the gate, so the
// gate sees A ready; then the gate's built window runs out, as it would
// between a repository's last launch and a push, and HEAD moves to commit
// B, whose build takes the scenario's build time. It returns the
// simulator's stats at that point.
func stalePrelude(ctx context.Context, sc Scenario, simURL, target string, smp *sampler, progress func(string, ...any)) (fakebinder.Stats, error) {
	if err := moveRef(ctx, simURL, sc.HotSpec, commitA, sc.BuildTime/10); err != nil {
		return fakebinder.Stats{}, err
	}
	sum, err := launchstorm.Run(ctx, launchstorm.Config{URL: target, Spec: sc.HotSpec, Clients: 1, Timeout: sc.Timeout})
	if err != nil {
		return fakebinder.Stats{}, fmt.Errorf("launching commit A before the storm: %w", err)
	}
	if sum.Ready != 1 || len(sum.Results) != 1 || !readyWith(sum.Results[0], commitA) {
		return fakebinder.Stats{}, fmt.Errorf("launching commit A before the storm: %d ready, results %+v; want ready with %s", sum.Ready, sum.Results, commitA)
	}
	wait := gateBuiltTTL + 2*time.Second
	if progress != nil {
		progress("  commit A built and launched through the gate; waiting %v for the gate's built window to end, then HEAD moves to B", wait)
	}
	select {
	case <-ctx.Done():
		return fakebinder.Stats{}, ctx.Err()
	case <-time.After(wait):
	}
	if err := moveRef(ctx, simURL, sc.HotSpec, commitB, sc.BuildTime); err != nil {
		return fakebinder.Stats{}, err
	}
	st, err := smp.stats(ctx)
	if err != nil {
		return st, fmt.Errorf("reading the simulator's stats before the storm: %w", err)
	}
	return st, nil
}

// moveRef is a push: the simulator's HEAD of spec now names commit, whose
// build takes build (POST /_sim/refs).
func moveRef(ctx context.Context, simURL, spec, commit string, build time.Duration) error {
	body, err := json.Marshal(fakebinder.RefMove{Spec: spec, Commit: commit, BuildTime: build.String()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, simURL+"/_sim/refs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moving %s to %s: %w", spec, commit, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("moving %s to %s: HTTP %d: %s", spec, commit, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// readyWith reports whether r got ready with commit: BinderHub's
// binder_persistent_request names the commit the launch's ref resolved to.
func readyWith(r launchstorm.Result, commit string) bool {
	return r.Outcome == launchstorm.OutcomeReady && commit != "" && strings.HasSuffix(r.Ready.BinderPersistentRequest, "/"+commit)
}

// startGuard starts `binderguard local` in front of simURL with policy
// (a LaunchPolicy's YAML), on free ports, and waits until Envoy serves the
// simulator. It returns the process, the function that stops it and
// removes the policy directory, the URL launches go to and binderguard's
// metrics URL.
func startGuard(ctx context.Context, simURL string, policy []byte, env legEnv) (g *proc, stop func(), url, metrics string, err error) {
	dir, err := os.MkdirTemp("", "replay-policies-")
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("making the policy directory: %w", err)
	}
	fail := func(err error) (*proc, func(), string, string, error) {
		if g != nil {
			g.stop()
		}
		os.RemoveAll(dir)
		return nil, nil, "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "launchpolicy-default.yaml"), policy, 0o644); err != nil {
		return fail(fmt.Errorf("writing the replay's policy: %w", err))
	}
	addrs := map[string]string{}
	for _, f := range []string{"listen", "admin", "gate", "xds", "metrics", "stats"} {
		if addrs[f], err = freeAddr(); err != nil {
			return fail(err)
		}
	}
	args := []string{"local", "--upstream", simURL, "--policies", dir, "--log-level", "warn"}
	for f, a := range addrs {
		args = append(args, "--"+f, a)
	}
	g, err = start(ctx, "binderguard local", filepath.Join(env.bin, "binderguard"), args, []string{"ENVOY_BIN=" + env.envoy})
	if err != nil {
		return fail(err)
	}
	url = "http://" + addrs["listen"]
	if err := g.waitAnswer(ctx, url+"/versions", "fakebinder", 60*time.Second); err != nil {
		return fail(err)
	}
	return g, func() { g.stop(); os.RemoveAll(dir) }, url, "http://" + addrs["metrics"] + "/metrics", nil
}
