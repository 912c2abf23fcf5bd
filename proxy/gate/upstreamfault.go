package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// Ways a BinderHub stream can break, as breaker outcomes and as the
// fault label of binderguard_upstream_faults_total.
var (
	errSlowHeaders = errors.New("BinderHub sent no answer in time")
	errStalled     = errors.New("BinderHub went silent mid-stream")
	errNotSSE      = errors.New("BinderHub sent bytes that are not launch events")
	errClosed      = errors.New("BinderHub closed the stream mid-build")
)

func faultLabel(err error) string {
	switch err {
	case errSlowHeaders:
		return "slow_headers"
	case errStalled:
		return "stalled"
	case errNotSSE:
		return "not_sse"
	case errClosed:
		return "closed"
	case errUnreachable:
		return "unreachable"
	}
	return "other"
}

// upstreamWatch cancels an upstream request that goes quiet: no response
// headers within Config.UpstreamHeaderTimeout, or no launch event or
// keepalive within Config.UpstreamIdleTimeout after that. BinderHub sends
// a keepalive every 25 s from the start of a /build request, so either
// means it, or something between, is stuck; without this a held launch
// would wait for a stuck stream until its client gave up.
type upstreamWatch struct {
	t       *time.Timer
	idle    time.Duration
	headers atomic.Bool  // the response headers came
	junk    atomic.Int64 // bytes read since the last launch event
}

// watchUpstream returns ctx with the watchdog's cancellation; the cause
// of a watchdog cancel is errSlowHeaders, errStalled or errNotSSE.
func (h *binderHub) watch(ctx context.Context) (context.Context, *upstreamWatch, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	uw := &upstreamWatch{idle: h.idleTimeout}
	uw.t = time.AfterFunc(h.headerTimeout, func() {
		switch {
		case !uw.headers.Load():
			cancel(errSlowHeaders)
		case uw.junk.Load() > 0:
			cancel(errNotSSE)
		default:
			cancel(errStalled)
		}
	})
	return ctx, uw, func() { uw.t.Stop(); cancel(nil) }
}

// gotHeaders starts the idle clock.
func (uw *upstreamWatch) gotHeaders() {
	uw.headers.Store(true)
	uw.t.Reset(uw.idle)
}

// event restarts the idle clock: a launch event or keepalive came.
func (uw *upstreamWatch) event() {
	uw.junk.Store(0)
	uw.t.Reset(uw.idle)
}

// body counts the bytes read, so a stream of bytes without launch events
// in them reads as not SSE rather than as silent.
func (uw *upstreamWatch) body(r io.Reader) io.Reader { return &countingReader{r: r, n: &uw.junk} }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// fault says why an upstream stream ended early: the watchdog's cause,
// an event too large or not a launch event, else a close. readErr is
// the reader's last error.
func (uw *upstreamWatch) fault(ctx context.Context, readErr error) error {
	if c := context.Cause(ctx); c != nil && c != context.Canceled {
		if errors.Is(c, errSlowHeaders) || errors.Is(c, errStalled) || errors.Is(c, errNotSSE) {
			return c
		}
	}
	if errors.Is(readErr, sse.ErrEventTooLarge) || uw.junk.Load() > 0 {
		return errNotSSE
	}
	return errClosed
}

// launchEvent reports whether e is something BinderHub sends on /build: a
// comment (its keepalive) or a JSON object. Anything else is dropped, not
// forwarded: the official client throws on data that is not JSON.
func launchEvent(e sse.Event) bool {
	if e.IsComment() {
		return true
	}
	d := bytes.TrimSpace(e.Data)
	return len(d) > 0 && d[0] == '{' && json.Valid(d)
}

// faultMessage tells the user what BinderHub did.
func (h *binderHub) faultMessage(err error) string {
	switch err {
	case errSlowHeaders:
		return fmt.Sprintf("BinderHub accepted the connection but sent no answer for %s.", h.headerTimeout)
	case errStalled:
		return fmt.Sprintf("BinderHub stopped sending anything on this launch's stream for %s, not even a keepalive.", h.idleTimeout)
	case errNotSSE:
		return "BinderHub sent something that is not a stream of launch events."
	case errClosed:
		return "BinderHub closed this launch's stream before it finished."
	}
	return "binderguard could not reach BinderHub."
}

func faultStatus(err error) int {
	if err == errSlowHeaders || err == errStalled {
		return 504
	}
	return 502
}

// faultEvent is the failed event a launch whose own stream broke gets.
func (h *binderHub) faultEvent(err error) sse.Event {
	return sse.Failed(faultStatus(err), h.faultMessage(err)+" Please try again in a minute.")
}

// upstreamBroke handles a leader's upstream stream that broke before
// built while its client is still here. BinderHub's build may well go on
// (a BinderHub restart closes every stream, not the build pod), so the
// break counts as one failure on the key's breaker and, while the breaker
// still allows a try, the oldest held launch leads next and re-attaches;
// once it opens, every held launch is told what happened and when to
// retry, and the breaker answers new launches until it half-opens.
func (f *flight) upstreamBroke(me *leadership, fault error) {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !f.leadsLocked(me) {
		return
	}
	g.m.upstreamFaults.WithLabelValues(faultLabel(fault)).Inc()
	if f.done != nil {
		f.done(fault)
		f.done = nil
	}
	br := g.breakers.lookup(f.key)
	if br == nil || f.followers.Len() == 0 {
		f.endLocked(errAbandoned)
		return
	}
	done, err := br.cb.Allow()
	if err != nil {
		_, until := br.state()
		d := collapse.Decision{Reason: collapse.ReasonBreakerOpen, RetryAfter: max(time.Until(until), time.Second)}
		f.failLocked(sse.Failed(503, g.hub.faultMessage(fault)+" "+shedMessage(d, f.key)))
		f.endLocked(nil)
		return
	}
	f.done = done
	f.handOnLocked()
}

// requestFault says why a request got no response: the watchdog's slow
// headers, else unreachable.
func (uw *upstreamWatch) requestFault(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errSlowHeaders) {
		return errSlowHeaders
	}
	return errUnreachable
}

// forwardWatched forwards a launch's own upstream stream (a pass or a
// released launch) under the watchdog, and when BinderHub breaks it
// before the launch ended, tells the client what happened instead of
// leaving it a bare close.
func (g *Gate) forwardWatched(sw *sse.Writer, r *http.Request, ctx context.Context, uw *upstreamWatch, body io.Reader, ls *launchStream, dropWaiting bool) {
	err := forwardEvents(sw, uw.body(body), ls, dropWaiting, uw.event)
	if err == nil || ls.done || r.Context().Err() != nil {
		return
	}
	fault := uw.fault(ctx, err)
	g.log.Warn("upstream stream broke", "fault", faultLabel(fault), "err", err)
	_ = sw.Write(g.hub.faultEvent(fault))
}
