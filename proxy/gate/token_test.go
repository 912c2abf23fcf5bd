package gate_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// A launch held through a build longer than its build_token's lifetime
// must still launch: BinderHub (and the simulator) refuse an expired token
// with 403 but let a launch without one through, counted by its per-IP
// rate limit. No fresher token is ever seen here, so every held launch
// has to go without one, on release and on promotion.
func TestHeldLaunchesPastTheirTokensExpiryAreReady(t *testing.T) {
	tests := map[string]struct {
		rateLimit    int  // BinderHub's per-address limit; 0 is off
		leaderLeaves bool // the leader's client leaves after its token expired
		followers    int
	}{
		"released after the build":                               {followers: 19},
		"released, with BinderHub's rate limit of 1 per address": {rateLimit: 1, followers: 19},
		"promoted when the leader leaves":                        {leaderLeaves: true, followers: 3},
		"promoted, with BinderHub's rate limit of 1 per address": {rateLimit: 1, leaderLeaves: true, followers: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sim := fastSim()
			sim.BuildTokenSecret = "s3cret"
			sim.RateLimit = tc.rateLimit
			sim.BuildTime = 4 * time.Second
			s := startStack(t, sim, gate.StaticPolicies(testLaunch(), gate.Global{}), nil)
			ctx := t.Context()
			leaderCtx, leaderLeaves := context.WithCancel(ctx)
			defer leaderLeaves()
			spec := "gh/org/repo/HEAD"
			origin := http.Header{"Origin": {"https://binder.test"}}
			// Valid when each request arrives, expired (JWT exp has whole
			// seconds) long before the 4 s build ends.
			exp := time.Now().Add(2 * time.Second)
			withToken := func() string { return spec + "?build_token=" + buildToken(t, "s3cret", spec, "binder.test", exp) }

			building := make(chan struct{})
			var once sync.Once
			lch := make(chan result, 1)
			go func() {
				lch <- s.launch(leaderCtx, withToken(), clientIP(0), origin, func(p sse.Payload) {
					if p.Phase == sse.PhaseBuilding {
						once.Do(func() { close(building) })
					}
				})
			}()
			<-building
			fchs := make([]chan result, tc.followers)
			for i := range fchs {
				fchs[i] = make(chan result, 1)
				go func() { fchs[i] <- s.launch(ctx, withToken(), clientIP(i+1), origin, nil) }()
			}
			waitFor(t, "held followers", func() bool { return gauge(s.reg, "binderguard_waiters") == tc.followers })
			if tc.leaderLeaves {
				time.Sleep(time.Until(exp) + 100*time.Millisecond)
				leaderLeaves()
			}
			l := <-lch
			results := collect(fchs)
			checkEveryoneLaunchedOnTheirOwn(t, results)
			if !tc.leaderLeaves {
				checkEveryoneLaunchedOnTheirOwn(t, []result{l})
			}
			st := s.sim.Stats()
			if st.BuildTokensRejected != 0 || st.RateLimited != 0 || st.BuildTokensAccepted != 1 {
				t.Errorf("simulator: build tokens rejected %d, accepted %d, rate limited %d; want 0, 1 (the leader's), 0",
					st.BuildTokensRejected, st.BuildTokensAccepted, st.RateLimited)
			}
			if st.BuildsStarted != 1 {
				t.Errorf("builds started = %d, want 1", st.BuildsStarted)
			}
			if n := metricValue(t, s.reg, "binderguard_expired_build_tokens_total", "action", "dropped"); n != float64(tc.followers) {
				t.Errorf("launches sent without their expired token = %v, want %d", n, tc.followers)
			}
			if tc.leaderLeaves {
				if p := metricValue(t, s.reg, "binderguard_promotions_total"); p != 1 {
					t.Errorf("promotions = %v, want 1", p)
				}
			}
		})
	}
}
