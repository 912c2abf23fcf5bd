package gate

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

func isSSE(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return resp.StatusCode == http.StatusOK && mt == "text/event-stream"
}

// launchStream counts one upstream launch stream until its launch ends,
// and learns from it the commit its ref resolved to (see stale.go).
type launchStream struct {
	g    *Gate
	key  string
	done bool

	passed   bool   // sent straight through: its image was seen built
	released bool   // a held launch released at built, on its own request
	sawPhase bool   // a first event has arrived
	learn    bool   // the spec's policy launches stale
	spec     string // the launch's provider spec, as requested
	tag      string // the tag of built's imageName

	// token is the build_token this stream presented; once BinderHub's
	// first event shows it accepted it, f remembers it for f's other held
	// launches (nil f: none to remember for).
	f      *flight
	token  string
	origin string
	judged bool
}

// judge hands s's token to its flight once BinderHub's first event is
// not a refusal (it checks the token before anything else): only a token
// BinderHub verified is ever presented for another launch, never one a
// client merely sent, which could be forged with a far-off expiry.
func (s *launchStream) judge(e sse.Event) {
	if s.judged || e.IsComment() {
		return
	}
	s.judged = true
	if s.f == nil || s.token == "" || e.Phase == sse.PhaseFailed {
		return
	}
	s.g.mu.Lock()
	s.f.tokens.Observe(s.spec, s.origin, s.token)
	s.g.mu.Unlock()
}

func (s *launchStream) end() {
	if !s.done {
		s.done = true
		s.g.streamDone(s.key)
	}
}

// promoteDelay is how long a promoted follower waits before attaching to
// the running build: enough for BinderHub to see the old leader's
// connection close, negligible next to a build.
const promoteDelay = 250 * time.Millisecond

// lead runs a leader's own upstream request and shares its build log with
// f's followers. sw is nil for a first leader (headers not yet sent) and
// set for a promoted follower.
func (g *Gate) lead(w http.ResponseWriter, sw *sse.Writer, r *http.Request, f *flight, me *leadership, providerSpec string, promoted bool) {
	ls := &launchStream{g: g, key: f.key, learn: f.launch.Stale, spec: providerSpec}
	defer ls.end()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// A first leader goes on at once with what its client sent, as it
	// would without the gate; a promoted one was held.
	token := r.URL.Query().Get("build_token")
	if promoted {
		token = f.heldToken(r, providerSpec)
	}
	ls.f, ls.token, ls.origin = f, token, origin(r)
	if promoted {
		// The old leader's stream to BinderHub is closed, but BinderHub
		// notices that only on its side of the connection: attaching at
		// once would briefly make two watchers of one build.
		select {
		case <-time.After(promoteDelay):
		case <-ctx.Done():
		}
	}
	g.mu.Lock()
	me.cancel = cancel
	if me.cut != nil {
		cancel()
	}
	g.mu.Unlock()

	start := func() {
		if sw == nil {
			sw = sse.Start(w)
		}
	}
	cut := func() *sse.Event {
		g.mu.Lock()
		defer g.mu.Unlock()
		return me.cut
	}

	wctx, uw, stopWatch := g.hub.watch(ctx)
	defer stopWatch()
	resp, err := g.hub.roundTrip(wctx, r, token)
	if err != nil {
		switch ev := cut(); {
		case ev != nil:
			start()
			_ = sw.Write(*ev)
			f.leaderGone(me)
		case r.Context().Err() != nil:
			f.leaderGone(me)
		default:
			fault := errUnreachable
			if errors.Is(context.Cause(wctx), errSlowHeaders) {
				fault = errSlowHeaders
			}
			g.log.Warn("upstream request failed", "key", f.key, "fault", faultLabel(fault), "err", err)
			g.m.upstreamFaults.WithLabelValues(faultLabel(fault)).Inc()
			ev := g.hub.faultEvent(fault)
			f.buildFailed(me, ev, fault)
			start()
			_ = sw.Write(ev)
		}
		return
	}
	defer resp.Body.Close()
	uw.gotHeaders()
	if !isSSE(resp) {
		// BinderHub answers /build with 200 SSE even for errors; anything
		// else comes from something broken in between and ends the flight.
		g.m.upstreamFaults.WithLabelValues("bad_status").Inc()
		ev := unexpectedAnswer(resp)
		f.buildFailed(me, ev, errUnreachable)
		if sw == nil {
			answerNonSSE(w, resp)
		} else {
			_ = sw.Write(ev)
		}
		return
	}
	if sw == nil {
		copyResponseHeaders(w.Header(), resp.Header)
		sw = sse.Start(w)
	}
	rd := sse.NewReader(uw.body(resp.Body))
	var prog collapse.Progress
	catchUp := promoted
	var readErr error
	clientGone := false
	for {
		e, err := rd.Next()
		if err != nil {
			readErr = err
			break
		}
		if !launchEvent(e) {
			continue
		}
		uw.event()
		kind := collapse.Classify(e, prog)
		if e.Phase == sse.PhaseWaiting || kind == collapse.Log {
			prog.Started = true
		}
		switch kind {
		case collapse.Log:
			if catchUp && f.ring.contains(e.Data) {
				continue // replayed tail of the build log the client has seen
			}
			catchUp = false
			f.markLog(me)
			f.ring.add(e)
		case collapse.Built:
			prog.Built = true
			f.built(me)
		case collapse.Private:
			if promoted && !prog.Built && e.Phase == sse.PhaseWaiting {
				continue // the client already has the gate's waiting event
			}
		}
		ls.observe(e)
		switch kind {
		case collapse.BuildFailed:
			// Shared first: the failure stands even if this client is gone.
			f.buildFailed(me, e, errBuildFailed)
			_ = sw.Write(e)
			return
		case collapse.Rejected:
			_ = sw.Write(e)
			f.leaderGone(me)
			return
		case collapse.Refused:
			_ = sw.Write(e)
			f.buildFailed(me, e, errRefused)
			return
		}
		if sw.Write(e) != nil {
			clientGone = true
			break
		}
		if collapse.Terminal(e.Phase) {
			ls.end()
			if e.Phase == sse.PhaseFailed {
				return // BinderHub may never close a failed stream; clients close on failed
			}
		}
	}
	if prog.Built {
		if !clientGone && r.Context().Err() == nil && !ls.done {
			// Past built the launch is this client's own: tell it why
			// its stream ends here.
			_ = sw.Write(g.hub.faultEvent(uw.fault(wctx, readErr)))
		}
		return
	}
	ev := cut()
	if ev != nil {
		_ = sw.Write(*ev)
	} else if !clientGone && r.Context().Err() == nil {
		// BinderHub broke the stream, not the client: say so, and let a
		// held launch re-attach while the breaker allows.
		fault := uw.fault(wctx, readErr)
		g.log.Warn("upstream stream broke before built", "key", f.key, "fault", faultLabel(fault), "err", readErr)
		cancel()
		_ = resp.Body.Close()
		f.upstreamBroke(me, fault)
		_ = sw.Write(g.hub.faultEvent(fault))
		return
	}
	// Let go of BinderHub's stream before a follower opens its own, so the
	// build has one watcher at a time.
	cancel()
	_ = resp.Body.Close()
	// Hands the flight on when the leader left or was cut from it alone
	// (DrainPeer); a no-op when the cut ended the flight.
	f.leaderGone(me)
}

// launchReleased runs a released follower's own upstream request; its
// headers are sent, so only its events continue the stream.
func (g *Gate) launchReleased(sw *sse.Writer, r *http.Request, f *flight, fo *follower) {
	ls := &launchStream{g: g, key: f.key, released: true, learn: f.launch.Stale, spec: fo.providerSpec}
	defer ls.end()
	wctx, uw, stopWatch := g.hub.watch(r.Context())
	defer stopWatch()
	ls.f, ls.token, ls.origin = f, f.heldToken(r, fo.providerSpec), origin(r)
	resp, err := g.hub.roundTrip(wctx, r, ls.token)
	if err != nil {
		if r.Context().Err() == nil {
			_ = sw.Write(g.hub.faultEvent(uw.requestFault(wctx)))
		}
		return
	}
	defer resp.Body.Close()
	uw.gotHeaders()
	if !isSSE(resp) {
		_ = sw.Write(unexpectedAnswer(resp))
		return
	}
	g.forwardWatched(sw, r, wctx, uw, resp.Body, ls, true)
}

// forwardEvents copies upstream events to the client until the stream or the
// client ends, or a failed event ends the launch. dropWaiting drops
// upstream waiting events before the first other phase: a released
// follower has seen the gate's waiting event and the build log already.
// It calls seen (if set) for every launch event or comment read, and
// returns the reader's error, nil when the launch ended (a failed event,
// or the client gone).
func forwardEvents(sw *sse.Writer, body io.Reader, ls *launchStream, dropWaiting bool, seen func()) error {
	rd := sse.NewReader(body)
	for {
		e, err := rd.Next()
		if err != nil {
			return err
		}
		if !launchEvent(e) {
			continue
		}
		if seen != nil {
			seen()
		}
		// Before dropWaiting: BinderHub's waiting is the first sign of a new
		// build, long before its first log line.
		if (ls.passed || ls.released) && !ls.sawPhase && !e.IsComment() {
			ls.sawPhase = true
			if collapse.Rebuilding(e) && !(ls.released && ls.f.rebuilt()) {
				ls.g.rebuilding(ls.key)
			}
		}
		if dropWaiting && !e.IsComment() {
			if e.Phase == sse.PhaseWaiting {
				continue
			}
			dropWaiting = false
		}
		ls.observe(e)
		if sw.Write(e) != nil {
			return nil
		}
		if collapse.Terminal(e.Phase) {
			ls.end()
			if e.Phase == sse.PhaseFailed {
				return nil
			}
		}
	}
}

// pass sends a launch straight to BinderHub; learn: its policy launches
// stale.
func (g *Gate) pass(w http.ResponseWriter, r *http.Request, key string, learn bool) {
	ls := &launchStream{g: g, key: key, passed: true, learn: learn, spec: strings.TrimRight(strings.TrimPrefix(r.URL.EscapedPath(), "/build/"), "/")}
	defer ls.end()
	wctx, uw, stopWatch := g.hub.watch(r.Context())
	defer stopWatch()
	resp, err := g.hub.roundTrip(wctx, r, r.URL.Query().Get("build_token"))
	if err != nil {
		if r.Context().Err() == nil {
			fault := uw.requestFault(wctx)
			g.log.Warn("upstream request failed", "key", key, "fault", faultLabel(fault), "err", err)
			ev, _ := g.hub.faultEvent(fault).Decode()
			reject(w, ev.StatusCode, ev.Message, time.Minute)
		}
		return
	}
	defer resp.Body.Close()
	uw.gotHeaders()
	if !isSSE(resp) {
		answerNonSSE(w, resp)
		return
	}
	copyResponseHeaders(w.Header(), resp.Header)
	g.forwardWatched(sse.Start(w), r, wctx, uw, resp.Body, ls, false)
}

// rebuilding ends key's built window: a launch passed during it found
// BinderHub building (see collapse.Rebuilding), so the next launches must
// form a flight rather than each watch the new build.
func (g *Gate) rebuilding(key string) {
	g.mu.Lock()
	_, was := g.builtUntil[key]
	delete(g.builtUntil, key)
	g.mu.Unlock()
	if was {
		g.m.rebuilds.Inc()
		g.log.Info("a launch passed as built found BinderHub building; collapsing its launches again", "key", key)
	}
}

// answerNonSSE answers a client whose upstream answer is not an event
// stream. 429 and 5xx become a 200 stream with one failed event: only that
// gets a message and status_code to the official client's user (the pinned
// 0.5.0 garbles a bare 429/5xx into a connection error), and the client is
// written to retry 429/5xx every second, which would hammer a BinderHub
// that is already struggling. Other answers (a 404 for a path BinderHub
// does not route) pass unchanged, unless the client's event stream is
// open already (a stale launch's fallback, see sentWriter): then only an
// event may follow, and the answer ends the stream as unexpectedAnswer.
func answerNonSSE(w http.ResponseWriter, resp *http.Response) {
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		retry := 10 * time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retry = time.Duration(s) * time.Second
		}
		reject(w, resp.StatusCode, "BinderHub answered "+statusText(resp)+". Please try again in a minute.", retry)
		return
	}
	if _, open := w.(*sentWriter); open {
		_ = sse.Start(w).Write(unexpectedAnswer(resp))
		return
	}
	copyRaw(w, resp)
}

// unexpectedAnswer is the failed event that ends a launch stream whose
// upstream answer is not an event stream: BinderHub answers /build with
// 200 SSE even for errors, so anything else comes from something broken
// in between. It names the status, never the body.
func unexpectedAnswer(resp *http.Response) sse.Event {
	return sse.Failed(http.StatusBadGateway, "binderguard got an unexpected answer from BinderHub ("+statusText(resp)+"). Please try again in a minute.")
}

// statusText is resp's status code and its standard reason phrase; not
// resp.Status, whose phrase is whatever the upstream sent.
func statusText(resp *http.Response) string {
	return strings.TrimSpace(strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode))
}

// copyRaw passes a non-SSE upstream answer through unchanged.
func copyRaw(w http.ResponseWriter, resp *http.Response) {
	copyResponseHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}
