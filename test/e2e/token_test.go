package e2e

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
	"github.com/binderguard/binderguard/test/fakebinder"
)

const tokenSecret = "s3cret"

// buildToken is a build_token as BinderHub's page issues it: HS256, aud
// the provider spec, origin the host the page was served from.
func buildToken(t *testing.T, spec, origin string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"aud": spec, "origin": origin, "exp": exp.Unix()}).SignedString([]byte(tokenSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The official JS client, held through Envoy and the gate while a build
// outlasts its build_token, reaches ready: on release the gate sends its
// launch without the expired token instead of one BinderHub refuses. With
// the gate gone, Envoy's fallback sends the client's own token untouched,
// as BinderHub would see it without binderguard.
func TestOfficialClientHeldPastItsTokensExpiryReachesReady(t *testing.T) {
	s := startStack(t, options{fb: fakebinder.Config{BuildTime: 5 * time.Second, BuildTokenSecret: tokenSecret, RateLimit: 2}})
	edge, err := url.Parse(s.edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	// Node's fetch sends no Origin, so BinderHub binds the token to Host,
	// which Envoy and the gate pass through. Every client here has the
	// address 127.0.0.1, and BinderHub's rate limit is on: two launches
	// without a valid token per address (Reset clears it).
	origin := edge.Host

	run := func(t *testing.T, spec, token string) compat.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(s.ctx, 40*time.Second)
		defer cancel()
		res, err := compat.Run(ctx, compat.Config{BaseURL: s.edgeURL, Spec: spec, BuildToken: token})
		if err != nil {
			t.Fatalf("running the official client: %v", err)
		}
		return res
	}
	held := func(t *testing.T, spec string, exp time.Time) compat.Result {
		t.Helper()
		// The leader brings no token: a token it brought would be a fresher
		// one for the same spec and origin, which the gate would present
		// for the client instead of dropping the client's.
		leader := make(chan answer, 1)
		go func() { leader <- launch(s.ctx, s.edgeURL, spec, 30*time.Second) }()
		deadline := time.Now().Add(10 * time.Second)
		for s.binder.Stats().BuildsInProgress == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the leader's build never started")
			}
			time.Sleep(20 * time.Millisecond)
		}
		res := run(t, spec, buildToken(t, spec, origin, exp))
		if a := <-leader; a.final().Phase != sse.PhaseReady {
			t.Errorf("leader ended with %+v (err %v)", a.final(), a.err)
		}
		return res
	}
	wantReady := func(t *testing.T, res compat.Result) {
		t.Helper()
		if res.FinalPhase != sse.PhaseReady || res.Token == "" || res.RequestsMade != 1 {
			t.Errorf("official client: final phase %q (status_code %d, message %q), token %q, requests %d; want ready after one request",
				res.FinalPhase, res.StatusCode, res.Message, res.Token, res.RequestsMade)
		}
	}

	t.Run("a held client whose token stays valid presents it", func(t *testing.T) {
		s.binder.Reset()
		wantReady(t, held(t, "gh/org/valid/HEAD", time.Now().Add(5*time.Minute)))
		// The client's token was checked and accepted, so the origin
		// binding above is what BinderHub sees.
		if st := s.binder.Stats(); st.BuildTokensAccepted != 1 || st.BuildTokensRejected != 0 {
			t.Errorf("simulator: build tokens accepted %d, rejected %d; want 1, 0", st.BuildTokensAccepted, st.BuildTokensRejected)
		}
	})
	t.Run("a held client whose token expired during the build is launched without it", func(t *testing.T) {
		s.binder.Reset()
		wantReady(t, held(t, "gh/org/expired/HEAD", time.Now().Add(2*time.Second)))
		// No token reached BinderHub: the leader and the client each used
		// one of their shared address's two launches without a token.
		if st := s.binder.Stats(); st.BuildTokensAccepted != 0 || st.BuildTokensRejected != 0 || st.RateLimited != 0 {
			t.Errorf("simulator: build tokens accepted %d, rejected %d, rate limited %d; want 0, 0, 0",
				st.BuildTokensAccepted, st.BuildTokensRejected, st.RateLimited)
		}
	})
	t.Run("with the gate gone the fallback sends the client's own token", func(t *testing.T) {
		s.killGate()
		s.waitGateHealth(false, 10*time.Second)
		s.binder.Reset()
		wantReady(t, run(t, "gh/org/fallback/HEAD", buildToken(t, "gh/org/fallback/HEAD", origin, time.Now().Add(5*time.Minute))))
		if st := s.binder.Stats(); st.BuildTokensAccepted != 1 {
			t.Errorf("simulator: build tokens accepted %d, want 1 (the client's own, straight from Envoy)", st.BuildTokensAccepted)
		}
		if n := s.binderHits.prefix("/build/gh/org/fallback/"); n != 1 {
			t.Errorf("BinderHub got %d requests for the fallback launch, want 1", n)
		}
	})
}
