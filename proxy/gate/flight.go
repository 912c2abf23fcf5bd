package gate

import (
	"fmt"
	"net/http"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// endFlightLocked removes f and reports its outcome to the breaker.
func (g *Gate) endFlightLocked(f *flight, outcome error) {
	if g.flights[f.key] == f {
		delete(g.flights, f.key)
	}
	if f.buildTime != nil {
		f.buildTime.Stop()
	}
	if f.done != nil {
		f.done(outcome)
		f.done = nil
	}
	f.leader = nil
	g.dirty.Store(true)
}

// current reports whether me still leads f. Call with g.mu held.
func (g *Gate) current(f *flight, me *leadership) bool {
	return g.flights[f.key] == f && f.leader == me && f.stage != collapse.Releasing
}

// popFollowerLocked takes the oldest held follower off f, or nil.
func (g *Gate) popFollowerLocked(f *flight) *follower {
	e := f.followers.Front()
	if e == nil {
		return nil
	}
	fo := f.followers.Remove(e).(*follower)
	fo.elem = nil
	g.waitersTotal--
	g.m.waiters.Set(float64(g.waitersTotal))
	g.dirty.Store(true)
	return fo
}

// failFollowersLocked ends every held follower of f with ev.
func (g *Gate) failFollowersLocked(f *flight, ev sse.Event) {
	for fo := g.popFollowerLocked(f); fo != nil; fo = g.popFollowerLocked(f) {
		fo.sig <- signal{kind: sigFail, ev: ev}
	}
}

// leaderGone hands f to its oldest follower when its leader leaves before
// the build ends (client gone, stream closed, or the leader's own request
// rejected). The follower's own request re-attaches to the running build,
// and the others notice nothing.
func (g *Gate) leaderGone(f *flight, me *leadership) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.current(f, me) {
		return
	}
	g.handOnLocked(f)
}

// built starts releasing f's followers: the image exists.
func (g *Gate) built(f *flight, me *leadership) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.current(f, me) {
		return
	}
	if !f.sawLog {
		g.log.Debug("image already built", "key", f.key)
	}
	f.stage = collapse.Releasing
	g.builtUntil[f.key] = time.Now().Add(g.cfg.BuiltTTL)
	g.recordBuildLocked(f, time.Now())
	if f.buildTime != nil {
		f.buildTime.Stop()
	}
	if f.done != nil {
		f.done(nil)
		f.done = nil
	}
	f.leader = nil
	g.dirty.Store(true)
	if f.followers.Len() == 0 {
		delete(g.flights, f.key)
		return
	}
	f.releasing = true
	g.wg.Add(1)
	go g.release(f)
}

// buildFailed ends f: its followers get the failure as their own failed
// event (message only: nothing else of the leader's event is shared).
func (g *Gate) buildFailed(f *flight, me *leadership, e sse.Event, outcome error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.current(f, me) {
		return
	}
	msg := "The build of this repository failed.\n"
	if p, err := e.Decode(); err == nil && p.Message != "" {
		msg = p.Message
	}
	var ev sse.Event
	if outcome == errBuildFailed {
		ev = sse.NewEvent(sse.Payload{Phase: sse.PhaseFailed, Message: msg})
	} else {
		code := 502
		if p, err := e.Decode(); err == nil && p.StatusCode >= 500 {
			code = p.StatusCode
		}
		ev = sse.Failed(code, msg)
	}
	g.failFollowersLocked(f, ev)
	g.endFlightLocked(f, outcome)
}

// buildTooLong trips f's breaker when its build passes the policy's
// maximum: the leader's upstream stream is cancelled and everyone waiting
// gets a 503 failed event.
func (g *Gate) buildTooLong(f *flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.flights[f.key] != f || f.stage == collapse.Releasing {
		return
	}
	g.m.shed.WithLabelValues("build_too_long").Inc()
	ev := sse.Failed(503, tooLongMessage(f))
	g.failFollowersLocked(f, ev)
	g.cutLeaderLocked(f, ev)
	g.endFlightLocked(f, errBuildTooLong)
}

// cutLeaderLocked cancels f's leader's upstream stream; its client gets ev
// instead of what follows.
func (g *Gate) cutLeaderLocked(f *flight, ev sse.Event) {
	if l := f.leader; l != nil && l.cut == nil {
		l.cut = &ev
		if l.cancel != nil {
			l.cancel()
		}
	}
}

func tooLongMessage(f *flight) string {
	return fmt.Sprintf("The build of %s has taken longer than %s, the most this site allows, so binderguard stopped waiting for it. Please try again in %d seconds.",
		shown(f.key), f.launch.MaxBuild, max(1, int(f.launch.BreakerOpen.Seconds())))
}

// release lets f's held followers go, one by one at the policy's pace and
// within the stream caps, each to make its own upstream request. It ends
// when no follower is left (then f ends) or the gate closes.
func (g *Gate) release(f *flight) {
	defer g.wg.Done()
	p := collapse.NewPacer(f.launch.ReleaseRate, f.launch.ReleaseBurst)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-g.ctx.Done():
			return false
		}
	}
	for {
		if !sleep(p.Reserve(time.Now())) {
			return
		}
		for {
			g.mu.Lock()
			if f.followers.Len() == 0 {
				if g.flights[f.key] == f {
					delete(g.flights, f.key)
					// A long release may outlast the mark set at built.
					g.builtUntil[f.key] = time.Now().Add(g.cfg.BuiltTTL)
				}
				f.releasing = false
				g.dirty.Store(true)
				g.mu.Unlock()
				return
			}
			perSpec := f.launch.MaxConcurrent <= 0 || g.streams[f.key] < f.launch.MaxConcurrent
			total := g.global.MaxConcurrentTotal <= 0 || g.streamsTotal < g.global.MaxConcurrentTotal
			if perSpec && total {
				break
			}
			g.mu.Unlock()
			// Launch streams end within seconds of ready; poll rather than
			// wire a wakeup through every stream end.
			if !sleep(capacityPoll) {
				return
			}
		}
		fo := g.popFollowerLocked(f)
		g.addStreamLocked(f.key)
		g.m.releases.Inc()
		fo.sig <- signal{kind: sigRelease}
		g.mu.Unlock()
	}
}

const capacityPoll = 100 * time.Millisecond

// removeFollower takes fo off f unless it was signalled already.
func (g *Gate) removeFollower(f *flight, fo *follower) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fo.elem == nil {
		return false
	}
	f.followers.Remove(fo.elem)
	fo.elem = nil
	g.waitersTotal--
	g.m.waiters.Set(float64(g.waitersTotal))
	g.dirty.Store(true)
	return true
}

// abandon forgets a follower whose client left, undoing a signal that
// raced the leaving.
func (g *Gate) abandon(f *flight, fo *follower) {
	if g.removeFollower(f, fo) {
		return
	}
	s := <-fo.sig
	switch s.kind {
	case sigRelease:
		g.streamDone(f.key)
	case sigPromote:
		g.streamDone(f.key)
		g.leaderGone(f, s.lead)
	}
}

// follow holds a follower on a live stream: a waiting event, the recent
// build log, live log events and keepalives, until it is released,
// promoted, failed, timed out, or its client leaves. Its loop is kept lean
// and the rare paths are in separate functions, because 10,000 held
// followers park in it (see ServeHTTP).
func (g *Gate) follow(w http.ResponseWriter, r *http.Request, a *admission) {
	f, fo := a.f, a.fo
	sw := g.startFollow(w, f, fo)
	if sw == nil {
		return
	}
	// One ticker for keepalives and progress: a held launch's goroutine
	// stays small (see ServeHTTP).
	keep := time.NewTicker(min(g.cfg.KeepaliveInterval, g.cfg.ProgressInterval))
	defer keep.Stop()
	lastProgress := time.Now()
	var hold <-chan time.Time
	if a.hold > 0 {
		t := time.NewTimer(a.hold)
		defer t.Stop()
		hold = t.C
	}
	done := r.Context().Done()
	var cursor uint64
	for {
		notify, ok := g.catchUp(sw, f, &cursor)
		if !ok {
			g.abandon(f, fo)
			return
		}
		select {
		case <-notify:
		case s := <-fo.sig:
			g.signalled(w, sw, r, f, fo, s, cursor)
			return
		case <-keep.C:
			if !g.refresh(sw, f, fo, &lastProgress) {
				g.abandon(f, fo)
				return
			}
		case <-hold:
			g.holdTimeout(w, sw, r, f, fo, a.hold, cursor)
			return
		case <-done:
			g.abandon(f, fo)
			return
		}
	}
}

//go:noinline
func (g *Gate) startFollow(w http.ResponseWriter, f *flight, fo *follower) *sse.Writer {
	sw := sse.Start(w)
	if sw.Write(g.waitEvent(f, fo, time.Now(), true)) != nil {
		g.abandon(f, fo)
		return nil
	}
	return sw
}

// catchUp writes the log events after *cursor and returns the channel
// that is closed when another one comes.
//
//go:noinline
func (g *Gate) catchUp(sw *sse.Writer, f *flight, cursor *uint64) (<-chan struct{}, bool) {
	evs, next, notify := f.ring.since(*cursor)
	*cursor = next
	for _, e := range evs {
		if sw.Write(e) != nil {
			return nil, false
		}
	}
	return notify, true
}

//go:noinline
func (g *Gate) holdTimeout(w http.ResponseWriter, sw *sse.Writer, r *http.Request, f *flight, fo *follower, hold time.Duration, cursor uint64) {
	if g.removeFollower(f, fo) {
		g.m.shed.WithLabelValues("hold_timeout").Inc()
		_ = sw.Write(sse.Failed(503, fmt.Sprintf("binderguard held this launch for %s while %s was being built, the most this site allows. Please try again later.", hold, shown(f.key))))
		return
	}
	// A release or promotion raced the timeout: honour it.
	g.signalled(w, sw, r, f, fo, <-fo.sig, cursor)
}

func (g *Gate) signalled(w http.ResponseWriter, sw *sse.Writer, r *http.Request, f *flight, fo *follower, s signal, cursor uint64) {
	switch s.kind {
	case sigFail:
		_ = sw.Write(s.ev)
	case sigRelease:
		g.launchReleased(sw, r, f, fo)
	case sigPromote:
		// Catch up on log events added since the follower last looked.
		evs, _, _ := f.ring.since(cursor)
		for _, e := range evs {
			if sw.Write(e) != nil {
				break
			}
		}
		g.lead(w, sw, r, f, s.lead, fo.providerSpec, true)
	}
}
