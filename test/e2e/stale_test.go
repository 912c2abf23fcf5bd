package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// The official JS client, through a real Envoy and the gate, launching a
// repository whose HEAD moved to a commit that is building, gets the
// stale notice and reaches ready with the previous commit at once; the
// edge counts it as class stale.
func TestOfficialClientGetsTheLastGoodCommitWhileANewOneBuilds(t *testing.T) {
	const (
		commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		spec    = "gh/org/repo/HEAD"
		bBuild  = 30 * time.Second
	)
	l := gate.DefaultLaunch()
	l.Stale, l.StaleMaxAge = true, time.Hour
	s := startStack(t, options{
		fb:       fakebinder.Config{BuildTime: 300 * time.Millisecond, BuildTokenSecret: tokenSecret},
		launch:   l,
		builtTTL: 50 * time.Millisecond, // so the launch after the push is not passed as built
	})
	ctx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()

	if err := s.binder.SetRef(spec, commitA, 0); err != nil {
		t.Fatal(err)
	}
	if a := launch(ctx, s.edgeURL, spec, 10*time.Second); a.final().BinderPersistentRequest != "v2/gh/org/repo/"+commitA {
		t.Fatalf("the launch of A ended with %+v (err %v)", a.final(), a.err)
	}
	time.Sleep(100 * time.Millisecond)
	// The push, through the simulator's own endpoint.
	resp, err := http.Post("http://"+s.binderAddr.String()+"/_sim/refs", "application/json",
		strings.NewReader(`{"spec": "`+spec+`", "commit": "`+commitB+`", "build_time": "`+bBuild.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moving HEAD: %s", resp.Status)
	}
	leaderBuilding(t, ctx, s.edgeURL+"/build/"+spec)

	start := time.Now()
	res, err := compat.Run(ctx, compat.Config{BaseURL: s.edgeURL, Spec: spec, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("running the official client: %v", err)
	}
	took := time.Since(start)
	if res.FinalPhase != sse.PhaseReady || res.Token == "" || res.RequestsMade != 1 {
		t.Fatalf("official client: final phase %q (message %q), token %q, requests %d; want ready after one request",
			res.FinalPhase, res.Message, res.Token, res.RequestsMade)
	}
	if len(res.Events) == 0 || !strings.Contains(res.Events[0].Message, "A new version of this repository is being built (started ") ||
		!strings.Contains(res.Events[0].Message, "You are getting the version from ") {
		t.Fatalf("official client's first event: %+v, want the stale notice", res.Events)
	}
	t.Logf("the official client showed %q and was ready after %v, while B's %v build runs", res.Events[0].Message, took, bBuild)
	if took > bBuild/2 {
		t.Errorf("ready after %v: the client waited for the build", took)
	}
	if n := s.binderHits.prefix("/build/gh/org/repo/" + commitA); n != 1 {
		t.Errorf("BinderHub got %d launches of commit A, want the client's one", n)
	}
	if st := s.binder.Stats(); st.BuildsStarted != 2 || st.PeakBuildWatchers != 1 {
		t.Errorf("simulator: builds %d, peak watchers %d; want 2 (A, B) and 1", st.BuildsStarted, st.PeakBuildWatchers)
	}
	stats, err := http.Get(s.statsURL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(stats.Body)
	stats.Body.Close()
	if want := `envoy_binderguard_launches{class="stale",route="launch"`; !strings.Contains(string(body), want) {
		t.Errorf("stats listener lacks %s", want)
	}
}

// leaderBuilding opens a launch of u and returns once its stream shows a
// build log line, so the gate knows the spec is building; the launch
// goes on in the background until ctx ends.
func leaderBuilding(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("leader: %v", err)
	}
	building := make(chan struct{})
	go func() {
		defer resp.Body.Close()
		rd := sse.NewReader(resp.Body)
		for {
			e, err := rd.Next()
			if err != nil {
				return
			}
			if e.Phase == sse.PhaseFetching || e.Phase == sse.PhaseBuilding {
				select {
				case <-building:
				default:
					close(building)
				}
			}
		}
	}()
	select {
	case <-building:
	case <-time.After(15 * time.Second):
		t.Fatal("the leader never showed a build")
	}
}
