package gate_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
)

// BinderHub refusing every launch of a spec before any build (a ref that
// does not resolve, GitHub's API rate limit exhausted, an unknown
// provider, its own banned_specs: BuildHandler.get's `await self.fail(...)`
// then return) answers each launch within its own request time. Through
// the gate, the launches that arrived while the first one was asking are
// held; they must all get the refusal at once. Promoted in turn, each
// after promoteDelay (250 ms), though no build runs that a second watcher
// could join, the n-th would wait n × (250 ms + BinderHub's answer) for a
// refusal BinderHub gives everyone in 100 ms, while new launches join the
// queue: 30 launches refused in 100 ms each took 10 s that way.
func TestLaunchesBinderHubRefusesAreNotAnsweredOneByOne(t *testing.T) {
	hub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // the ref lookup
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"phase": "failed", "message": "Could not resolve ref for gh:o/r/gone. Double check your URL and that your repo is public.\n"}`+"\n\n")
	})
	up, _ := url.Parse(httptestServer(t, hub))
	g, err := gate.New(gate.Config{Upstream: up, Policies: gate.StaticPolicies(testLaunch(), gate.Global{})})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptestServer(t, g)

	const n = 30
	start := time.Now()
	var wg sync.WaitGroup
	res := make([]result, n)
	for i := range n {
		wg.Go(func() {
			res[i] = launchURL(t.Context(), http.DefaultClient, srv+"/build/gh/o/r/gone", clientIP(i), nil, nil)
		})
	}
	wg.Wait()
	took := time.Since(start)
	var slowest time.Duration
	for i, r := range res {
		if r.failed == nil || !hasMessage(r.failed, "Could not resolve ref") {
			t.Errorf("launch %d: %v %+v (%v), want BinderHub's own refusal", i, r.phases(), r.failed, r.err)
		}
		slowest = max(slowest, r.elapsed)
	}
	if slowest > 3*time.Second {
		t.Errorf("the last of %d launches got BinderHub's 100 ms refusal after %v (all in %v): refused launches are answered one at a time", n, slowest.Round(time.Millisecond), took.Round(time.Millisecond))
	}
}
