package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/compat"
	"github.com/binderguard/binderguard/test/fakebinder"
)

var buildingFor = regexp.MustCompile(`this one has been building for (\d+) seconds`)

// The official client, held behind another launch's build, yields the
// gate's progress again and again while it waits (as BinderHub's UI
// writes every message to its log): its place, how long the
// repository's last build took, and how long this one has gone.
func TestOfficialClientShowsRefreshedProgressWhileHeld(t *testing.T) {
	s := startStack(t, options{
		fb: fakebinder.Config{BuildTime: 6 * time.Second},
		gateTweak: func(c *gate.Config) {
			c.ProgressInterval = time.Second
			c.BuiltTTL = time.Millisecond // so the second storm builds again
		},
	})
	spec := "gh/popular/repo/HEAD"
	// One build first: the gate learns how long this repository takes.
	if a := launch(s.ctx, s.edgeURL, spec, 30*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("first build: %+v (%v)", a.events, a.err)
	}
	s.binder.Reset() // the image is gone: the next launch builds again

	leader := make(chan answer, 1)
	go func() { leader <- launch(s.ctx, s.edgeURL, spec, 30*time.Second) }()
	waitFor(t, 20*time.Second, "the second build to show at the gate", func() bool {
		st := s.gate.State()
		return len(st.Hot) > 0 && st.Hot[0].Stage == collapse.Building
	})
	res, err := compat.Run(s.ctx, compat.Config{BaseURL: s.edgeURL, Spec: spec, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("official client: %v", err)
	}
	if a := <-leader; a.final().Phase != sse.PhaseReady {
		t.Errorf("leader: %+v (%v)", a.events, a.err)
	}
	if res.FinalPhase != sse.PhaseReady {
		t.Fatalf("official client ended in %q (%q), want ready", res.FinalPhase, res.Message)
	}
	var shown []compat.Event
	for _, e := range res.Events {
		if strings.HasPrefix(e.Message, "binderguard: ") {
			shown = append(shown, e)
		}
	}
	if len(shown) < 3 {
		t.Fatalf("the client yielded %d progress messages over a build of several seconds with a 1 s refresh, want at least 3: %+v", len(shown), res.Events)
	}
	last := -1
	for _, e := range shown {
		if !strings.Contains(e.Message, "its last build took about") || !strings.Contains(e.Message, "1 launch is waiting for this repository") {
			t.Errorf("progress %q: want the place and the last build's time", e.Message)
		}
		if m := buildingFor.FindStringSubmatch(e.Message); m != nil {
			secs, _ := strconv.Atoi(m[1])
			if secs < last {
				t.Errorf("building time went back from %d to %d s: %q", last, secs, e.Message)
			}
			last = secs
		}
	}
	if last < 2 {
		t.Errorf("no refresh said the build had gone on for seconds: %q", shown[len(shown)-1].Message)
	}
	first, final := shown[0], shown[len(shown)-1]
	t.Logf("official client, held: %d progress messages from %.1f s to %.1f s; first %q; last %q",
		len(shown), float64(first.TMs)/1000, float64(final.TMs)/1000, first.Message, final.Message)
}
