package gate

import (
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// Build durations kept per key, and keys kept, for the estimates held
// launches are told.
const (
	buildTimesPerKey = 5
	buildTimesKeys   = 1000
)

// waitEvent is fo's progress: where it stands among f's held launches and
// how long f's build has gone against the key's recent builds. The first
// one, on arrival, is a "waiting" event whatever the stage, as BinderHub's
// own first event is.
func (f *flight) waitEvent(fo *follower, now time.Time, arrival bool) sse.Event {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	w := collapse.Wait{
		Stage:       f.stage,
		Waiting:     f.followers.Len(),
		Building:    now.Sub(f.start),
		ReleaseRate: f.launch.ReleaseRate,
	}
	// Followers are released oldest first, so those ahead are the ones
	// that arrived earlier and still wait. Counting from the oldest one's
	// arrival number is O(1) per refresh; launches ahead that left count
	// until the oldest of them is released (an upper bound, clamped).
	if front := f.followers.Front(); front != nil && fo.elem != nil {
		w.Ahead = int(fo.seq - front.Value.(*follower).seq)
	}
	w.Typical, w.Samples = f.g.buildTimes.Typical(f.key)
	if arrival {
		return sse.NewEvent(sse.Payload{Phase: sse.PhaseWaiting, Message: collapse.WaitMessage(w)})
	}
	return collapse.WaitEvent(w)
}

// refresh writes fo's progress when ProgressInterval has passed since the
// last one (a data event keeps the stream alive as well as a keepalive
// does), else a keepalive. It reports whether the client still reads.
//
//go:noinline
func (f *flight) refresh(sw *sse.Writer, fo *follower, last *time.Time) bool {
	g := f.g
	now := time.Now()
	// A tick may come a moment early; a tenth of the interval's slack keeps
	// it from slipping a whole keepalive period.
	if now.Sub(*last) < g.cfg.ProgressInterval-g.cfg.ProgressInterval/10 {
		return sw.Write(sse.Keepalive) == nil
	}
	*last = now
	return sw.Write(f.waitEvent(fo, now, false)) == nil
}

// recordBuildLocked remembers how long f's build took, from its leader's
// arrival to built, when f showed a build (not an image found built).
func (f *flight) recordBuildLocked(now time.Time) {
	if f.sawLog {
		f.g.buildTimes.Record(f.key, now.Sub(f.start), now)
	}
}
