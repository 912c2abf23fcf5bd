package gate_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

var waitingRE = regexp.MustCompile(`(\d+) launch(?:es)? (?:is|are) waiting`)

// waitingCount is how many waiting launches a progress message names (0:
// none).
func waitingCount(msg string) int {
	m := waitingRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// progressOf returns the gate's own progress messages a client got.
func progressOf(r result) []sse.Payload {
	var out []sse.Payload
	for _, e := range r.events {
		if strings.HasPrefix(e.Message, "binderguard: ") {
			out = append(out, e)
		}
	}
	return out
}

// A held launch is told its place and how long the build has gone, again
// and again while it waits, and once the repository has built before, how
// long its builds take.
func TestHeldLaunchesGetRefreshedProgressWithAnEstimate(t *testing.T) {
	sim := fastSim()
	sim.BuildTime = 2500 * time.Millisecond
	s := startStack(t, sim, gate.StaticPolicies(testLaunch(), gate.Global{}), func(c *gate.Config) {
		c.ProgressInterval = 400 * time.Millisecond
		c.BuiltTTL = time.Millisecond
	})
	ctx := t.Context()
	spec := "gh/org/repo/HEAD"

	storm := func() []result {
		lch, fchs := s.leaderThenFollowers(t, ctx, ctx, spec, 3)
		rs := collect(fchs)
		<-lch
		return rs
	}
	first := storm()
	for i, r := range first {
		checkEveryoneLaunchedOnTheirOwn(t, []result{r})
		p := progressOf(r)
		if len(p) < 3 {
			t.Fatalf("follower %d got %d progress events over a 2.5 s build with a 0.4 s interval, want several: %v", i, len(p), r.phases())
		}
		// On arrival a follower is told how many wait then (the three
		// arrive concurrently); every refresh after all arrived names 3.
		if p[0].Phase != sse.PhaseWaiting || waitingCount(p[0].Message) < 1 {
			t.Errorf("follower %d: first progress %+v, want a waiting event naming the held launches", i, p[0])
		}
		if last := p[len(p)-1]; waitingCount(last.Message) != 3 {
			t.Errorf("follower %d: last refresh %q, want it to name the 3 held launches", i, last.Message)
		}
		for _, e := range p[1:] {
			if e.Phase != sse.PhaseBuilding || !strings.Contains(e.Message, "this one has been building for") {
				t.Errorf("follower %d: refresh %+v, want a building event saying how long the build has gone", i, e)
			}
			if strings.Contains(e.Message, "last build") {
				t.Errorf("follower %d: an estimate with no earlier build: %q", i, e.Message)
			}
		}
	}
	// Places in line, once all three wait: they arrived one after another.
	ahead := map[string]bool{}
	for _, r := range first {
		p := progressOf(r)
		m := p[len(p)-1].Message
		for _, want := range []string{"yours first", "1 of them ahead of yours", "2 of them ahead of yours"} {
			if strings.Contains(m, want) {
				ahead[want] = true
			}
		}
	}
	if len(ahead) != 3 {
		t.Errorf("followers' places %v, want first, 1 ahead and 2 ahead", ahead)
	}

	// The image is forgotten so the next launches build again; now the
	// gate knows how long this repository takes.
	s.sim.Reset()
	second := storm()
	for i, r := range second {
		checkEveryoneLaunchedOnTheirOwn(t, []result{r})
		p := progressOf(r)
		if len(p) < 2 || !strings.Contains(p[len(p)-1].Message, "its last build took about ") {
			t.Errorf("follower %d of the second build: progress %+v, want the first build's time as the estimate", i, p)
		}
	}
}
