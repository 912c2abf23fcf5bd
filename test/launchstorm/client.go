package launchstorm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// Outcome is how one launch ended.
type Outcome string

// Outcomes of a launch.
const (
	// OutcomeReady: a "ready" event arrived.
	OutcomeReady Outcome = "ready"
	// OutcomeFailed: a "failed" event arrived, or an HTTP error answer the
	// JS client gives up on (or that is not retried without Config.Retry).
	OutcomeFailed Outcome = "failed"
	// OutcomeError: a transport error, a timeout, a malformed event, or the
	// stream ended before "ready" or "failed".
	OutcomeError Outcome = "error"
)

// Result is what one client saw.
type Result struct {
	// Index numbers the client (see Config.Headers).
	Index int
	// Spec is the spec this client launched.
	Spec    string
	Outcome Outcome
	// StatusCode is the failed event's status_code, or the HTTP status of
	// a non-200 answer that ended the launch; 0 when there was none.
	StatusCode int
	// HTTPStatus is the HTTP status of the last response (0 if none).
	HTTPStatus int
	// RetryAfter is the Retry-After header of the last response.
	RetryAfter string
	// Message is the failed event's message, or the error text.
	Message string
	// Err is set for OutcomeError.
	Err error
	// Ready is the decoded "ready" event (Token and URL among others).
	Ready sse.Payload
	// Phases lists the distinct phases seen, in first-seen order.
	Phases []string
	// Requests counts HTTP requests made (more than 1 only with retries).
	Requests int
	// Keepalives counts comment lines received.
	Keepalives int
	// Events counts data events received.
	Events int
	// Started is when the client started (after its ramp offset), so a
	// result can be placed on a timeline: it ended at Started + Duration.
	Started time.Time
	// TTFB is the time from the client's start to the first response
	// headers; zero if none arrived.
	TTFB time.Duration
	// TimeToReady is the time from the client's start to "ready".
	TimeToReady time.Duration
	// Duration is the time from the client's start to its end.
	Duration time.Duration
}

// launcher runs single launches with shared settings.
type launcher struct {
	hc      *http.Client
	retry   bool
	timeout time.Duration
	headers func(i int) http.Header
	tracker *Tracker
}

// launch runs client i against url until ready, failed, error or timeout.
// Its result is named so that the deferred Duration reaches the caller.
func (l *launcher) launch(ctx context.Context, i int, spec, url string) (r Result) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	r = Result{Index: i, Spec: spec, Started: start}
	l.tracker.set(i, stateConnecting)
	defer func() {
		r.Duration = time.Since(start)
		switch r.Outcome {
		case OutcomeReady:
			l.tracker.set(i, sse.PhaseReady)
		case OutcomeFailed:
			l.tracker.set(i, sse.PhaseFailed)
		default:
			l.tracker.set(i, stateError)
		}
	}()
	for {
		retry := l.attempt(ctx, start, &r, url)
		if !retry {
			return r
		}
		t := time.NewTimer(RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			r.Outcome, r.Err = OutcomeError, fmt.Errorf("retrying after HTTP %d: %w", r.HTTPStatus, ctxErr(ctx, l.timeout))
			r.Message = r.Err.Error()
			return r
		case <-t.C:
		}
	}
}

// attempt makes one request and reads its stream; it reports whether to
// retry (only with Config.Retry, on what the JS client's source retries).
func (l *launcher) attempt(ctx context.Context, start time.Time, r *Result, url string) (retry bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		r.Outcome, r.Err = OutcomeError, fmt.Errorf("making request: %w", err)
		r.Message = r.Err.Error()
		return false
	}
	if l.headers != nil {
		for k, vs := range l.headers(r.Index) {
			if http.CanonicalHeaderKey(k) == "Host" && len(vs) > 0 {
				req.Host = vs[0] // net/http sends req.Host, not a Host header
				continue
			}
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	req.Header.Set("Accept", "text/event-stream")
	r.Requests++
	resp, err := l.hc.Do(req)
	if err != nil {
		// The JS client gives up on a network error (no retry).
		r.Outcome, r.Err = OutcomeError, fmt.Errorf("requesting %s: %w", url, ctxErrOr(ctx, l.timeout, err))
		r.Message = r.Err.Error()
		return false
	}
	defer resp.Body.Close()
	if r.TTFB == 0 {
		r.TTFB = time.Since(start)
	}
	r.HTTPStatus = resp.StatusCode
	r.RetryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.StatusCode = resp.StatusCode
		r.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		r.Outcome = OutcomeFailed
		l.tracker.set(r.Index, sse.PhaseUnknown)
		return l.retry && retriable(resp.StatusCode)
	}
	r.StatusCode, r.Message = 0, ""
	return l.read(ctx, start, r, resp.Body)
}

// retriable reports whether the JS client's source means to retry after an
// HTTP status: 429 and 5xx are retried, other non-OK answers are final.
// (The pinned 0.5.0 never does; see Config.Retry.)
func retriable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// read consumes one event stream until a final event.
func (l *launcher) read(ctx context.Context, start time.Time, r *Result, body io.Reader) (retry bool) {
	rd := sse.NewReader(body)
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("event stream closed unexpectedly")
			}
			r.Outcome, r.Err = OutcomeError, fmt.Errorf("reading events: %w", ctxErrOr(ctx, l.timeout, err))
			r.Message = r.Err.Error()
			return false
		}
		if ev.IsComment() {
			r.Keepalives++
			continue
		}
		r.Events++
		phase := strings.ToLower(ev.Phase)
		if phase == "" && len(ev.Data) == 0 {
			continue // the JS client ignores empty data
		}
		if phase != "" {
			r.addPhase(phase)
			l.tracker.set(r.Index, phase)
		}
		switch phase {
		case sse.PhaseReady:
			p, err := ev.Decode()
			if err != nil {
				r.Outcome, r.Err = OutcomeError, fmt.Errorf("decoding ready event: %w", err)
				r.Message = r.Err.Error()
				return false
			}
			r.Outcome, r.Ready = OutcomeReady, p
			r.TimeToReady = time.Since(start)
			return false
		case sse.PhaseFailed:
			p, err := ev.Decode()
			if err != nil {
				r.Outcome, r.Err = OutcomeError, fmt.Errorf("decoding failed event: %w", err)
				r.Message = r.Err.Error()
				return false
			}
			r.Outcome, r.StatusCode, r.Message = OutcomeFailed, p.StatusCode, p.Message
			return false
		case "":
			// Not a JSON object with a phase: the JS client's JSON.parse
			// throws on non-JSON and it gives up.
			if _, err := ev.Decode(); err != nil {
				r.Outcome, r.Err = OutcomeError, fmt.Errorf("malformed event: %w", err)
				r.Message = r.Err.Error()
				return false
			}
		}
	}
}

func (r *Result) addPhase(p string) {
	for _, q := range r.Phases {
		if q == p {
			return
		}
	}
	r.Phases = append(r.Phases, p)
}

// ctxErrOr names a timeout or cancellation instead of the transport error
// it caused.
func ctxErrOr(ctx context.Context, timeout time.Duration, err error) error {
	if ctx.Err() != nil {
		return ctxErr(ctx, timeout)
	}
	return err
}

func ctxErr(ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", timeout, ctx.Err())
	}
	return ctx.Err()
}
