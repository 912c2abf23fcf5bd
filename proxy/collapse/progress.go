package collapse

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// BuildTimes keeps the last few build durations of each build key, for at
// most a bounded number of keys: enough to tell a held launch how long its
// repository's builds usually take, never enough to grow with a crawl over
// many repositories.
type BuildTimes struct {
	perKey, maxKeys int
	keys            map[string]*buildTimes
}

type buildTimes struct {
	last []time.Duration // oldest first, at most perKey
	at   time.Time       // when the newest was recorded
}

// NewBuildTimes keeps perKey durations for each of at most maxKeys keys
// (both at least 1).
func NewBuildTimes(perKey, maxKeys int) *BuildTimes {
	return &BuildTimes{perKey: max(perKey, 1), maxKeys: max(maxKeys, 1), keys: make(map[string]*buildTimes)}
}

// Record adds one build of key that took d. When a new key would pass the
// bound, the key recorded least recently is forgotten.
func (b *BuildTimes) Record(key string, d time.Duration, now time.Time) {
	if d <= 0 {
		return
	}
	bt := b.keys[key]
	if bt == nil {
		if len(b.keys) >= b.maxKeys {
			oldest, first := "", true
			for k, v := range b.keys {
				if first || v.at.Before(b.keys[oldest].at) || (v.at.Equal(b.keys[oldest].at) && k < oldest) {
					oldest, first = k, false
				}
			}
			delete(b.keys, oldest)
		}
		bt = &buildTimes{}
		b.keys[key] = bt
	}
	if len(bt.last) == b.perKey {
		bt.last = append(bt.last[:0], bt.last[1:]...)
	}
	bt.last = append(bt.last, d)
	bt.at = now
}

// Typical is the median of key's recorded builds (the upper middle one of
// an even count, so one quick build does not make the estimate hopeful)
// and how many there are; zero and 0 when none is known.
func (b *BuildTimes) Typical(key string) (time.Duration, int) {
	bt := b.keys[key]
	if bt == nil || len(bt.last) == 0 {
		return 0, 0
	}
	s := slices.Clone(bt.last)
	slices.Sort(s)
	return s[len(s)/2], len(s)
}

// Len is the number of keys with a recorded build.
func (b *BuildTimes) Len() int { return len(b.keys) }

// Wait is what a held launch is told about its wait.
type Wait struct {
	Stage Stage
	// Waiting are the held launches of the key; Ahead those of them that
	// will be released before this one.
	Waiting, Ahead int
	// Building is how long the key's current build has been going.
	Building time.Duration
	// Typical and Samples are BuildTimes.Typical of the key.
	Typical time.Duration
	Samples int
	// ReleaseRate is the policy's releases per second once built (0: no
	// pacing).
	ReleaseRate float64
}

// WaitEvent is the event a held launch gets on arrival and then every
// refresh: a "waiting" event before the build shows, "building" while it
// does (so a client's progress display stays on building), "waiting" again
// while the held launches are released. Only phase and message, like
// BinderHub's own progress events.
func WaitEvent(w Wait) sse.Event {
	phase := sse.PhaseWaiting
	if w.Stage == Building {
		phase = sse.PhaseBuilding
	}
	return sse.NewEvent(sse.Payload{Phase: phase, Message: WaitMessage(w)})
}

// WaitMessage says, in one line, where a held launch stands: how many
// launches wait for the repository and how many are ahead of this one,
// how long its last builds took and how long this one has been going.
func WaitMessage(w Wait) string {
	var b strings.Builder
	b.WriteString("binderguard: ")
	if w.Stage == Releasing {
		fmt.Fprintf(&b, "the image of this repository is ready; launches are being started a few at a time. %s", waitingCount(w.Waiting, w.Ahead))
		if w.ReleaseRate > 0 {
			fmt.Fprintf(&b, "; yours starts in about %s", roughly(time.Duration(float64(w.Ahead+1)/w.ReleaseRate*float64(time.Second))))
		}
		b.WriteString(".\n")
		return b.String()
	}
	b.WriteString(waitingCount(w.Waiting, w.Ahead))
	switch {
	case w.Samples == 1:
		fmt.Fprintf(&b, "; its last build took about %s", roughly(w.Typical))
	case w.Samples > 1:
		fmt.Fprintf(&b, "; its last builds took about %s", roughly(w.Typical))
	}
	if w.Stage == Starting {
		b.WriteString("; its build is starting for another launch of it")
	} else {
		fmt.Fprintf(&b, "; this one has been building for %s", roughly(w.Building))
		if w.Samples > 0 {
			switch left := w.Typical - w.Building; {
			case left >= time.Minute/2:
				fmt.Fprintf(&b, ", about %s to go", roughly(left))
			case left >= 0:
				b.WriteString(", so it should be ready soon")
			default:
				b.WriteString(", longer than usual")
			}
		}
	}
	b.WriteString(". You will be launched as soon as its image is ready.\n")
	return b.String()
}

func waitingCount(waiting, ahead int) string {
	waiting = max(waiting, 1)
	ahead = min(max(ahead, 0), waiting-1)
	s := fmt.Sprintf("%d launches are waiting for this repository", waiting)
	if waiting == 1 {
		s = "1 launch is waiting for this repository"
	}
	switch {
	case waiting > 1 && ahead == 0:
		s += ", yours first"
	case waiting > 1:
		s += fmt.Sprintf(", %d of them ahead of yours", ahead)
	}
	return s
}

// roughly writes d the way a person would say it: seconds under a minute,
// whole minutes under two hours, hours beyond.
func roughly(d time.Duration) string {
	switch {
	case d < 2*time.Second:
		return "1 second"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Round(time.Second)/time.Second))
	case d < 90*time.Second:
		return "1 minute"
	case d < 2*time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
	default:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
}
