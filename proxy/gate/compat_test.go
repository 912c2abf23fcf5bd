package gate_test

import (
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
)

// The official @jupyterhub/binderhub-client must reach ready as a held
// follower and must stop, not retry, on the gate's rejections. It needs
// Node and `make tools`; compat.Launch fails with what to install.
func TestOfficialClientThroughTheGate(t *testing.T) {
	pol := gate.PoliciesFunc(func(spec string, _ time.Time) (gate.Policy, error) {
		p := gate.Policy{Key: spec, Launch: testLaunch()}
		switch spec {
		case "gh/evil/miner/HEAD":
			p.Ban = &gate.Ban{Message: "gh/evil/miner is banned on this site", Enforce: true}
		case "gh/org/crowded/HEAD":
			p.Launch.MaxWaiters = 1
		}
		return p, nil
	})
	sim := fastSim()
	sim.BuildTime = 3 * time.Second
	s := startStack(t, sim, pol, nil)

	t.Run("a held follower reaches ready", func(t *testing.T) {
		ctx := t.Context()
		lch, _ := s.leaderThenFollowers(t, ctx, ctx, "gh/org/repo/HEAD", 0)
		res, err := compat.Launch(ctx, s.gateURL, "gh/org/repo/HEAD")
		if err != nil {
			t.Fatal(err)
		}
		if res.FinalPhase != sse.PhaseReady || res.Token == "" || res.RequestsMade != 1 {
			t.Errorf("official client: final phase %q, token %q, requests %d, phases %v, message %q",
				res.FinalPhase, res.Token, res.RequestsMade, res.Phases, res.Message)
		}
		if l := <-lch; l.ready == nil || l.ready.Token == res.Token {
			t.Errorf("leader: ready %+v shares the follower's token", l.ready)
		}
		if n := metricValue(t, s.reg, "binderguard_releases_total"); n != 1 {
			t.Errorf("releases = %v, want 1 (the client was held, not passed)", n)
		}
	})
	rejections := map[string]struct {
		spec   string
		status int
		setup  func(t *testing.T) func()
	}{
		"a banned launch ends failed without a retry": {spec: "gh/evil/miner/HEAD", status: 403},
		"a shed launch ends failed without a retry": {
			spec: "gh/org/crowded/HEAD", status: 429,
			setup: func(t *testing.T) func() {
				ctx := t.Context()
				lch, fchs := s.leaderThenFollowers(t, ctx, ctx, "gh/org/crowded/HEAD", 1)
				return func() { <-lch; collect(fchs) }
			},
		},
	}
	for name, tc := range rejections {
		t.Run(name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(t)()
			}
			res, err := compat.Launch(t.Context(), s.gateURL, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.FinalPhase != sse.PhaseFailed || res.StatusCode != tc.status || res.RequestsMade != 1 {
				t.Errorf("official client: final phase %q, status %d, requests %d (statuses %v), message %q; want failed %d after one request",
					res.FinalPhase, res.StatusCode, res.RequestsMade, res.Statuses, res.Message, tc.status)
			}
		})
	}
}
