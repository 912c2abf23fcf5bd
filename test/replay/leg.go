package replay

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

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

// LegKind is one of a replay's four legs.
type LegKind struct {
	Mode Mode
	// Storm: Scenario.Launches launches of the hot repository; otherwise
	// one, the no-storm baseline: the same build and background mix.
	Storm bool
}

func (k LegKind) String() string {
	if k.Storm {
		return "storm " + k.Mode.String()
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
	// Sim is the simulator's /_sim/stats at the end.
	Sim     fakebinder.Stats
	Samples []Sample
}

//go:embed policy.yaml
var policyYAML []byte

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
		g, stop, url, metrics, err := startGuard(ctx, simURL, env)
		if err != nil {
			return leg, err
		}
		defer stop()
		guard, target, smp.metricsURL = g, url, metrics
		smp.guard = append([]int{g.pid()}, childrenOf(g.pid())...)
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
	}
	return leg, nil
}

// startGuard starts `binderguard local` in front of simURL with the
// replay's policy, on free ports, and waits until Envoy serves the
// simulator. It returns the process, the function that stops it and
// removes the policy directory, the URL launches go to and binderguard's
// metrics URL.
func startGuard(ctx context.Context, simURL string, env legEnv) (g *proc, stop func(), url, metrics string, err error) {
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
	if err := os.WriteFile(filepath.Join(dir, "launchpolicy-default.yaml"), policyYAML, 0o644); err != nil {
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
