package gate_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
)

// With the site's cors_allow_origin, the answers the gate makes itself (a
// held follower, a ban, a shed launch, a refused spec, its 405) carry it
// with BinderHub's allow-headers, and an answer copied from BinderHub
// carries BinderHub's headers: here none, as this BinderHub sends none.
func TestGateAnswersCarryTheSitesCORSHeaders(t *testing.T) {
	const origin = "https://book.example.org"
	pol := gate.PoliciesFunc(func(spec string, _ time.Time) (gate.Policy, error) {
		p := gate.Policy{Key: spec, Launch: testLaunch()}
		if spec == "gh/evil/miner/HEAD" {
			p.Ban = &gate.Ban{Message: "banned", Enforce: true}
		}
		p.Launch.MaxWaiters = 1
		return p, nil
	})
	sim := fastSim()
	sim.BuildTime = 3 * time.Second
	s := startStack(t, sim, pol, func(c *gate.Config) { c.CORSAllowOrigin = origin })
	ctx := t.Context()
	lch, fchs := s.leaderThenFollowers(t, ctx, ctx, "gh/org/repo/HEAD", 1)

	shed := s.launch(ctx, "gh/org/repo/HEAD", clientIP(9), nil, nil)
	banned := s.launch(ctx, "gh/evil/miner/HEAD", clientIP(8), nil, nil)
	refused := s.launch(ctx, "gh/org/"+strings.Repeat("x", gate.MaxSpecBytes)+"/HEAD", clientIP(7), nil, nil)
	leader, follower := <-lch, collect(fchs)[0]
	for what, r := range map[string]result{"held follower": follower, "shed": shed, "banned": banned, "refused": refused} {
		if r.header.Get("Access-Control-Allow-Origin") != origin || r.header.Get("Access-Control-Allow-Headers") != "cache-control" {
			t.Errorf("%s (class %q): CORS headers %q, %q; want %q and cache-control", what, r.header.Get(gate.ClassHeader),
				r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Allow-Headers"), origin)
		}
	}
	if follower.ready == nil || shed.failed == nil || shed.failed.StatusCode != 429 || banned.failed == nil || refused.failed == nil {
		t.Errorf("answers were not the kinds the test means to check: follower %v, shed %+v, banned %+v, refused %+v",
			follower.phases(), shed.failed, banned.failed, refused.failed)
	}
	if got := leader.header.Get("Access-Control-Allow-Origin"); got != "" || leader.ready == nil {
		t.Errorf("leader (BinderHub's answer, which has no CORS headers): Access-Control-Allow-Origin %q, ready %v; want none", got, leader.ready != nil)
	}

	resp, err := s.client.Do(&http.Request{Method: http.MethodOptions, URL: mustURL(t, s.gateURL+"/build/gh/org/repo/HEAD"), Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("OPTIONS at the gate: %d, origin %q; want 405 with the origin", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestGateRefusesACORSOriginThatIsNoHeaderValue(t *testing.T) {
	u, _ := url.Parse("http://binder.test")
	for _, o := range []string{"*\r\nSet-Cookie: a=b", " *"} {
		_, err := gate.New(gate.Config{Upstream: u, Policies: gate.StaticPolicies(testLaunch(), gate.Global{}), CORSAllowOrigin: o})
		if err == nil || !strings.Contains(err.Error(), "CORS allow origin") {
			t.Errorf("origin %q: %v, want an error naming the CORS allow origin", o, err)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
