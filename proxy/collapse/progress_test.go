package collapse

import (
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

func TestBuildTimesKeepTheLastFewPerKeyForBoundedKeys(t *testing.T) {
	min := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	type rec struct {
		key string
		d   time.Duration
	}
	tests := map[string]struct {
		perKey, maxKeys int
		recs            []rec
		key             string
		want            time.Duration
		wantN           int
		wantKeys        int
	}{
		"nothing recorded": {perKey: 5, maxKeys: 10, key: "a", want: 0, wantN: 0},
		"one build":        {perKey: 5, maxKeys: 10, recs: []rec{{"a", min(14)}}, key: "a", want: min(14), wantN: 1, wantKeys: 1},
		"median of an odd count": {perKey: 5, maxKeys: 10,
			recs: []rec{{"a", min(30)}, {"a", min(10)}, {"a", min(14)}}, key: "a", want: min(14), wantN: 3, wantKeys: 1},
		"upper middle of an even count": {perKey: 5, maxKeys: 10,
			recs: []rec{{"a", min(2)}, {"a", min(14)}}, key: "a", want: min(14), wantN: 2, wantKeys: 1},
		"only the last perKey builds count": {perKey: 3, maxKeys: 10,
			recs: []rec{{"a", min(60)}, {"a", min(60)}, {"a", min(5)}, {"a", min(6)}, {"a", min(7)}}, key: "a", want: min(6), wantN: 3, wantKeys: 1},
		"keys are separate": {perKey: 5, maxKeys: 10,
			recs: []rec{{"a", min(1)}, {"b", min(20)}}, key: "b", want: min(20), wantN: 1, wantKeys: 2},
		"the key recorded least recently is forgotten past the bound": {perKey: 5, maxKeys: 2,
			recs: []rec{{"a", min(1)}, {"b", min(2)}, {"a", min(3)}, {"c", min(4)}}, key: "b", want: 0, wantN: 0, wantKeys: 2},
		"a recently recorded key survives the bound": {perKey: 5, maxKeys: 2,
			recs: []rec{{"a", min(1)}, {"b", min(2)}, {"a", min(3)}, {"c", min(4)}}, key: "a", want: min(3), wantN: 2, wantKeys: 2},
		"a zero or negative duration is not a build": {perKey: 5, maxKeys: 2,
			recs: []rec{{"a", 0}, {"a", -time.Second}}, key: "a", want: 0, wantN: 0, wantKeys: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := NewBuildTimes(tc.perKey, tc.maxKeys)
			for i, r := range tc.recs {
				b.Record(r.key, r.d, t0.Add(time.Duration(i)*time.Second))
			}
			got, n := b.Typical(tc.key)
			if got != tc.want || n != tc.wantN {
				t.Errorf("Typical(%q) = %v, %d; want %v, %d", tc.key, got, n, tc.want, tc.wantN)
			}
			if b.Len() != tc.wantKeys {
				t.Errorf("Len() = %d, want %d", b.Len(), tc.wantKeys)
			}
		})
	}
}

func TestWaitMessageSaysPositionAndEstimate(t *testing.T) {
	min := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	tests := map[string]struct {
		w         Wait
		wantPhase string
		want      string
	}{
		"the issue's example": {
			w:         Wait{Stage: Building, Waiting: 57, Ahead: 12, Building: min(6), Typical: min(14), Samples: 3},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 57 launches are waiting for this repository, 12 of them ahead of yours; its last builds took about 14 minutes; this one has been building for 6 minutes, about 8 minutes to go. You will be launched as soon as its image is ready.\n",
		},
		"one earlier build": {
			w:         Wait{Stage: Building, Waiting: 2, Ahead: 0, Building: 40 * time.Second, Typical: min(3), Samples: 1},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 2 launches are waiting for this repository, yours first; its last build took about 3 minutes; this one has been building for 40 seconds, about 2 minutes to go. You will be launched as soon as its image is ready.\n",
		},
		"no earlier build to estimate from": {
			w:         Wait{Stage: Building, Waiting: 1, Building: 90 * time.Second},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 1 launch is waiting for this repository; this one has been building for 2 minutes. You will be launched as soon as its image is ready.\n",
		},
		"almost done": {
			w:         Wait{Stage: Building, Waiting: 3, Ahead: 2, Building: min(13) + 50*time.Second, Typical: min(14), Samples: 5},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 3 launches are waiting for this repository, 2 of them ahead of yours; its last builds took about 14 minutes; this one has been building for 14 minutes, so it should be ready soon. You will be launched as soon as its image is ready.\n",
		},
		"longer than usual": {
			w:         Wait{Stage: Building, Waiting: 3, Ahead: 1, Building: min(20), Typical: min(14), Samples: 5},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 3 launches are waiting for this repository, 1 of them ahead of yours; its last builds took about 14 minutes; this one has been building for 20 minutes, longer than usual. You will be launched as soon as its image is ready.\n",
		},
		"before the build shows": {
			w:         Wait{Stage: Starting, Waiting: 4, Ahead: 3, Typical: min(14), Samples: 2},
			wantPhase: sse.PhaseWaiting,
			want:      "binderguard: 4 launches are waiting for this repository, 3 of them ahead of yours; its last builds took about 14 minutes; its build is starting for another launch of it. You will be launched as soon as its image is ready.\n",
		},
		"released at a pace": {
			w:         Wait{Stage: Releasing, Waiting: 40, Ahead: 29, ReleaseRate: 10},
			wantPhase: sse.PhaseWaiting,
			want:      "binderguard: the image of this repository is ready; launches are being started a few at a time. 40 launches are waiting for this repository, 29 of them ahead of yours; yours starts in about 3 seconds.\n",
		},
		"released without pacing": {
			w:         Wait{Stage: Releasing, Waiting: 2, Ahead: 1},
			wantPhase: sse.PhaseWaiting,
			want:      "binderguard: the image of this repository is ready; launches are being started a few at a time. 2 launches are waiting for this repository, 1 of them ahead of yours.\n",
		},
		"an ahead count past the waiting ones is clamped": {
			w:         Wait{Stage: Building, Waiting: 2, Ahead: 7, Building: 3 * time.Hour},
			wantPhase: sse.PhaseBuilding,
			want:      "binderguard: 2 launches are waiting for this repository, 1 of them ahead of yours; this one has been building for 3.0 hours. You will be launched as soon as its image is ready.\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := WaitMessage(tc.w); got != tc.want {
				t.Errorf("WaitMessage:\n got %q\nwant %q", got, tc.want)
			}
			e := WaitEvent(tc.w)
			p, err := e.Decode()
			if err != nil || p.Phase != tc.wantPhase || p.Message != tc.want || e.Phase != tc.wantPhase {
				t.Errorf("WaitEvent = %+v (%v), want phase %q", p, err, tc.wantPhase)
			}
			// A held launch's own progress must never look like a shared
			// build-log line with anything but phase and message.
			if !onlyShared(e.Data) {
				t.Errorf("WaitEvent carries fields other than phase and message: %s", e.Data)
			}
		})
	}
}

func TestRoughly(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1 second", 1500 * time.Millisecond: "1 second", 2 * time.Second: "2 seconds",
		59 * time.Second: "59 seconds", 89 * time.Second: "1 minute", 90 * time.Second: "2 minutes",
		119 * time.Minute: "119 minutes", 2 * time.Hour: "2.0 hours",
	} {
		if got := roughly(d); got != want {
			t.Errorf("roughly(%v) = %q, want %q", d, got, want)
		}
	}
}
