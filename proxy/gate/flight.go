package gate

import (
	"container/list"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// flight is one spec's leader and followers, from the leader's arrival
// until the build fails, is abandoned, or every follower is released. It
// owns its follower queue and the steps of its build; the counts, built
// marks and breakers those steps touch are the gate's. Fields other than
// ring are guarded by g.mu, and so are the methods named ...Locked; the
// others take it.
type flight struct {
	g         *Gate
	key       string
	paths     []string
	policy    string // Policy.Name of the leader's launch, for State
	launch    Launch
	stage     collapse.Stage
	leader    *leadership
	followers list.List // of *follower, oldest first
	tokens    collapse.Tokens
	ring      *ring
	done      func(error) // the breaker's outcome callback; nil once called
	buildTime *time.Timer
	nextSeq   uint64 // arrival number of the next follower
	releasing bool
	sawLog    bool
	builds    int  // builds this flight has followed: a release goroutine ends when it moves on
	unbuilt   bool // a released launch found BinderHub building: the spec is not built any more

	start      time.Time // the leader's arrival: when the build began, as users are told
	stale      collapse.StaleFlight
	staleProbe chan struct{} // closed when the probing stale launch answers
}

// leadership is one request's turn as a flight's leader.
type leadership struct {
	cancel context.CancelFunc
	cut    *sse.Event // the gate cut the upstream stream; tell the client this
	peer   string     // the address its request came from (an Envoy)
}

type follower struct {
	r            *http.Request
	providerSpec string
	seq          uint64        // arrival order in its flight
	elem         *list.Element // nil once signalled or removed
	sig          chan signal   // receives at most one signal
}

type signalKind int

const (
	sigRelease signalKind = iota
	sigPromote
	sigFail
)

type signal struct {
	kind signalKind
	ev   sse.Event // for sigFail
	lead *leadership
}

// endLocked removes f and reports its outcome to the breaker.
func (f *flight) endLocked(outcome error) {
	g := f.g
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
	g.pub.dirty.Store(true)
}

// leadsLocked reports whether me still leads f.
func (f *flight) leadsLocked(me *leadership) bool {
	return f.g.flights[f.key] == f && f.leader == me && f.stage != collapse.Releasing
}

// pushLocked holds a launch of providerSpec as f's newest follower.
func (f *flight) pushLocked(r *http.Request, providerSpec string) *follower {
	fo := &follower{r: r, providerSpec: providerSpec, seq: f.nextSeq, sig: make(chan signal, 1)}
	f.nextSeq++
	fo.elem = f.followers.PushBack(fo)
	f.g.counts.held(1)
	return fo
}

// popLocked takes the oldest held follower off f, or nil.
func (f *flight) popLocked() *follower {
	e := f.followers.Front()
	if e == nil {
		return nil
	}
	fo := f.followers.Remove(e).(*follower)
	fo.elem = nil
	f.g.counts.held(-1)
	return fo
}

// failLocked ends every held follower of f with ev.
func (f *flight) failLocked(ev sse.Event) {
	for fo := f.popLocked(); fo != nil; fo = f.popLocked() {
		fo.sig <- signal{kind: sigFail, ev: ev}
	}
}

// drainPeerLocked ends with ev the followers whose request came from
// peer, and returns how many.
func (f *flight) drainPeerLocked(peer string, ev sse.Event) int {
	n := 0
	for e := f.followers.Front(); e != nil; {
		fo, next := e.Value.(*follower), e.Next()
		if peerHost(fo.r.RemoteAddr) == peer {
			f.followers.Remove(e)
			fo.elem = nil
			f.g.counts.held(-1)
			fo.sig <- signal{kind: sigFail, ev: ev}
			n++
		}
		e = next
	}
	return n
}

// remove takes fo off f unless it was signalled already.
func (f *flight) remove(fo *follower) bool {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if fo.elem == nil {
		return false
	}
	f.followers.Remove(fo.elem)
	fo.elem = nil
	f.g.counts.held(-1)
	return true
}

// abandon forgets a follower whose client left, undoing a signal that
// raced the leaving.
func (f *flight) abandon(fo *follower) {
	if f.remove(fo) {
		return
	}
	s := <-fo.sig
	switch s.kind {
	case sigRelease:
		f.g.streamDone(f.key)
	case sigPromote:
		f.g.streamDone(f.key)
		f.leaderGone(s.lead)
	}
}

// leaderGone hands f to its oldest follower when its leader leaves before
// the build ends (client gone, stream closed, or the leader's own request
// rejected). The follower's own request re-attaches to the running build,
// and the others notice nothing.
func (f *flight) leaderGone(me *leadership) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if !f.leadsLocked(me) {
		return
	}
	f.handOnLocked()
}

// handOnLocked makes f's oldest held launch its leader, or ends f when
// none is left.
func (f *flight) handOnLocked() {
	fo := f.popLocked()
	if fo == nil {
		f.endLocked(errAbandoned)
		return
	}
	next := &leadership{peer: peerHost(fo.r.RemoteAddr)}
	f.leader = next
	f.g.counts.addStream(f.key)
	f.g.m.promotions.Inc()
	fo.sig <- signal{kind: sigPromote, lead: next}
}

// built starts releasing f's followers: the image exists.
func (f *flight) built(me *leadership) {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !f.leadsLocked(me) {
		return
	}
	if !f.sawLog {
		g.log.Debug("image already built", "key", f.key)
	}
	f.stage = collapse.Releasing
	g.builtUntil[f.key] = time.Now().Add(g.cfg.BuiltTTL)
	f.recordBuildLocked(time.Now())
	if f.buildTime != nil {
		f.buildTime.Stop()
	}
	if f.done != nil {
		f.done(nil)
		f.done = nil
	}
	f.leader = nil
	g.pub.dirty.Store(true)
	if f.followers.Len() == 0 {
		delete(g.flights, f.key)
		return
	}
	f.releasing = true
	g.wg.Add(1)
	go f.release(f.builds)
}

// rebuilt turns f back from releasing to building when one of its
// released launches found BinderHub building instead of the image (the
// ref moved while the held launches were being let go: the 2018
// trigger). Letting the rest go would make each its own watcher of the
// new build; instead the oldest still held leads it with its own request
// and the others stay held behind that leader. The launches released
// meanwhile watch it too: a few, at the release pace. It reports false
// when f is no longer releasing (then the caller ends the spec's built
// mark, as for a pass).
func (f *flight) rebuilt() bool {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.flights[f.key] != f || f.stage != collapse.Releasing {
		return false
	}
	delete(g.builtUntil, f.key)
	g.m.rebuilds.Inc()
	if f.followers.Len() == 0 {
		f.unbuilt = true // nothing held: later launches collapse on their own
		return true
	}
	done, err := g.breakers.get(f.key, f.launch, time.Now()).cb.Allow()
	if err != nil {
		f.unbuilt = true // the breaker allows no build now: the release goes on
		return true
	}
	g.log.Info("a released launch found BinderHub building; holding the rest for the new build", "key", f.key, "held", f.followers.Len())
	f.builds++
	f.releasing = false
	f.done = done
	f.stage = collapse.Starting
	f.start = time.Now()
	f.sawLog = false
	if !f.stale.Probing {
		f.stale = collapse.StaleFlight{}
	}
	if f.launch.MaxBuild > 0 {
		f.buildTime = time.AfterFunc(f.launch.MaxBuild, f.buildTooLong)
	}
	g.pub.dirty.Store(true)
	f.handOnLocked()
	return true
}

// buildFailed ends f: its followers get the failure as their own failed
// event (message only: nothing else of the leader's event is shared).
// It serves a refusal of the spec before any build as well (errRefused,
// collapse.Refused: a ref that does not resolve, BinderHub's own ban or
// quota): BinderHub would give every held launch the same answer, so each
// gets it now rather than asking in turn behind promoteDelay.
func (f *flight) buildFailed(me *leadership, e sse.Event, outcome error) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if !f.leadsLocked(me) {
		return
	}
	msg := "The build of this repository failed.\n"
	if p, err := e.Decode(); err == nil && p.Message != "" {
		msg = p.Message
	}
	var ev sse.Event
	if outcome == errBuildFailed || outcome == errRefused {
		ev = sse.NewEvent(sse.Payload{Phase: sse.PhaseFailed, Message: msg})
	} else {
		code := 502
		if p, err := e.Decode(); err == nil && p.StatusCode >= 500 {
			code = p.StatusCode
		}
		ev = sse.Failed(code, msg)
	}
	f.failLocked(ev)
	f.endLocked(outcome)
}

// buildTooLong trips f's breaker when its build passes the policy's
// maximum: the leader's upstream stream is cancelled and everyone waiting
// gets a 503 failed event.
func (f *flight) buildTooLong() {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.flights[f.key] != f || f.stage == collapse.Releasing {
		return
	}
	g.m.shed.WithLabelValues("build_too_long").Inc()
	ev := sse.Failed(503, tooLongMessage(f))
	f.failLocked(ev)
	f.cutLeaderLocked(ev)
	f.endLocked(errBuildTooLong)
}

// cutLeaderLocked cancels f's leader's upstream stream; its client gets ev
// instead of what follows.
func (f *flight) cutLeaderLocked(ev sse.Event) {
	if l := f.leader; l != nil && l.cut == nil {
		l.cut = &ev
		if l.cancel != nil {
			l.cancel()
		}
	}
}

// markLog records that f's leader showed a build, so later launches of the
// spec follow with a build in progress.
func (f *flight) markLog(me *leadership) {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if f.leadsLocked(me) && f.stage == collapse.Starting {
		f.stage = collapse.Building
		f.g.pub.dirty.Store(true)
	}
	f.sawLog = true
}

func tooLongMessage(f *flight) string {
	return fmt.Sprintf("The build of %s has taken longer than %s, the most this site allows, so binderguard stopped waiting for it. Please try again in %d seconds.",
		shown(f.key), f.launch.MaxBuild, max(1, int(f.launch.BreakerOpen.Seconds())))
}

// release lets f's held followers go, one by one at the policy's pace and
// within the stream caps, each to make its own upstream request. It ends
// when no follower is left (then f ends) or the gate closes.
func (f *flight) release(build int) {
	g := f.g
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
			if f.builds != build {
				// A released launch found BinderHub building again (rebuilt):
				// the flight leads that build now; its own built releases
				// the rest.
				g.mu.Unlock()
				return
			}
			if f.followers.Len() == 0 {
				if g.flights[f.key] == f {
					delete(g.flights, f.key)
					if !f.unbuilt {
						// A long release may outlast the mark set at built.
						g.builtUntil[f.key] = time.Now().Add(g.cfg.BuiltTTL)
					}
				}
				f.releasing = false
				g.pub.dirty.Store(true)
				g.mu.Unlock()
				return
			}
			perSpec := f.launch.MaxConcurrent <= 0 || g.counts.streams[f.key] < f.launch.MaxConcurrent
			total := g.global.MaxConcurrentTotal <= 0 || g.counts.streamsTotal < g.global.MaxConcurrentTotal
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
		fo := f.popLocked()
		g.counts.addStream(f.key)
		g.m.releases.Inc()
		fo.sig <- signal{kind: sigRelease}
		g.mu.Unlock()
	}
}

const capacityPoll = 100 * time.Millisecond

// catchUp writes the log events after *cursor and returns the channel
// that is closed when another one comes.
//
//go:noinline
func (f *flight) catchUp(sw *sse.Writer, cursor *uint64) (<-chan struct{}, bool) {
	evs, next, notify := f.ring.since(*cursor)
	*cursor = next
	for _, e := range evs {
		if sw.Write(e) != nil {
			return nil, false
		}
	}
	return notify, true
}

// heldToken is the build_token a held launch (released or promoted)
// presents to BinderHub: never one that expired while it was held (see
// collapse.Tokens.ForHeld).
func (f *flight) heldToken(r *http.Request, providerSpec string) string {
	own := r.URL.Query().Get("build_token")
	if own == "" {
		return ""
	}
	g := f.g
	g.mu.Lock()
	token, choice := f.tokens.ForHeld(providerSpec, origin(r), own, time.Now(), g.cfg.TokenMargin)
	g.mu.Unlock()
	switch choice {
	case collapse.TokenFresher:
		g.m.expiredTokens.WithLabelValues("refreshed").Inc()
	case collapse.TokenNone:
		g.m.expiredTokens.WithLabelValues("dropped").Inc()
		g.log.Debug("held launch sent without its expired build_token", "key", f.key)
	}
	return token
}

// follow holds a follower on a live stream: a waiting event, the recent
// build log, live log events and keepalives, until it is released,
// promoted, failed, timed out, or its client leaves. Its loop is kept lean
// and the rare paths are in separate functions, because 10,000 held
// followers park in it (see ServeHTTP).
func (g *Gate) follow(w http.ResponseWriter, r *http.Request, a *plan) {
	f, fo := a.f, a.fo
	sw := startFollow(w, f, fo)
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
		notify, ok := f.catchUp(sw, &cursor)
		if !ok {
			f.abandon(fo)
			return
		}
		select {
		case <-notify:
		case s := <-fo.sig:
			g.signalled(w, sw, r, f, fo, s, cursor)
			return
		case <-keep.C:
			if !f.refresh(sw, fo, &lastProgress) {
				f.abandon(fo)
				return
			}
		case <-hold:
			g.holdTimeout(w, sw, r, f, fo, a.hold, cursor)
			return
		case <-done:
			f.abandon(fo)
			return
		}
	}
}

//go:noinline
func startFollow(w http.ResponseWriter, f *flight, fo *follower) *sse.Writer {
	sw := sse.Start(w)
	if sw.Write(f.waitEvent(fo, time.Now(), true)) != nil {
		f.abandon(fo)
		return nil
	}
	return sw
}

//go:noinline
func (g *Gate) holdTimeout(w http.ResponseWriter, sw *sse.Writer, r *http.Request, f *flight, fo *follower, hold time.Duration, cursor uint64) {
	if f.remove(fo) {
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
