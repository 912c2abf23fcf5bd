package collapse

import (
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

func TestNextStaleProbesOnceThenFollowsTheAnswer(t *testing.T) {
	tests := map[string]struct {
		f    StaleFlight
		want StaleTurn
	}{
		"the first stale launch of a flight probes":           {want: StaleProbe},
		"a launch while the probe is out waits for it":        {f: StaleFlight{Probing: true}, want: StaleWait},
		"after the probe found the image launches go":         {f: StaleFlight{Verified: true}, want: StaleGo},
		"after a stale launch missed the image launches hold": {f: StaleFlight{Failed: true}, want: StaleHold},
		"a miss outweighs an earlier find":                    {f: StaleFlight{Verified: true, Failed: true}, want: StaleHold},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := NextStale(tc.f); got != tc.want {
				t.Errorf("NextStale(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}

func TestStaleFoundOnlyOnBuilt(t *testing.T) {
	tests := map[string]struct {
		ev   sse.Event
		want bool
	}{
		"found built image":        {ev: sse.NewEvent(sse.Payload{Phase: sse.PhaseBuilt, Message: "Found built image, launching...\n"}), want: true},
		"a build starts":           {ev: sse.NewEvent(sse.Payload{Phase: sse.PhaseWaiting, Message: "Waiting for build to start...\n"})},
		"refused":                  {ev: sse.Failed(429, "rate limited")},
		"a log line":               {ev: sse.NewEvent(sse.Payload{Phase: sse.PhaseFetching, Message: "Cloning\n"})},
		"an event without a phase": {ev: sse.Event{Data: []byte(`{}`)}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := StaleFound(tc.ev); got != tc.want {
				t.Errorf("StaleFound = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStaleNoticeSaysWhenTheBuildStartedAndWhichVersion(t *testing.T) {
	version := time.Date(2026, 4, 20, 14, 3, 0, 0, time.FixedZone("CEST", 2*3600))
	tests := map[string]struct {
		started time.Duration // before t0
		want    string
	}{
		"seconds":  {started: 20 * time.Second, want: "binderguard: A new version of this repository is being built (started less than a minute ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
		"a minute": {started: 90 * time.Second, want: "binderguard: A new version of this repository is being built (started 1 minute ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
		"minutes":  {started: 6*time.Minute + 59*time.Second, want: "binderguard: A new version of this repository is being built (started 6 minutes ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
		"an hour":  {started: 61 * time.Minute, want: "binderguard: A new version of this repository is being built (started 1 hour ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
		"hours":    {started: 5 * time.Hour, want: "binderguard: A new version of this repository is being built (started 5 hours ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
		"days":     {started: 72 * time.Hour, want: "binderguard: A new version of this repository is being built (started 3 days ago). You are getting the version from 20 April 2026, 12:03 UTC now.\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ev := StaleNotice(t0.Add(-tc.started), version, t0)
			p, err := ev.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if p.Phase != sse.PhaseWaiting || p.Message != tc.want {
				t.Errorf("notice = %s %q, want waiting %q", p.Phase, p.Message, tc.want)
			}
			if Classify(ev, Progress{}) != Private {
				t.Error("the notice must never be classified as shareable")
			}
		})
	}
}
