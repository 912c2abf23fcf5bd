package fakebinder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Fault modes. These are test injections of a broken BinderHub (or of
// something broken between it and its clients), not BinderHub behaviour:
// BinderHub's BuildHandler always answers /build with 200 and an event
// stream, flushes a keepalive every 25 s until it finishes the request,
// and ends a stream only after ready or failed. The simulator behaves like
// that unless a test sets a Fault.
const (
	// FaultStall sends After events, then nothing at all (no keepalives)
	// while holding the connection open: a hung BinderHub process.
	FaultStall = "stall"
	// FaultClose sends After events, then ends the response: a
	// BinderHub restarting, or a proxy between dropping the stream.
	FaultClose = "close"
	// FaultGarbage sends After events, then bytes that are not SSE (an
	// HTML error page, again and again) and never another event.
	FaultGarbage = "garbage"
	// FaultStatus answers with Status and a plain-text body, before any
	// event: an ingress or BinderHub itself failing (5xx) or rate
	// limiting (429) in front of the handler.
	FaultStatus = "status"
	// FaultSlowHeaders waits Delay before answering at all, then answers
	// normally.
	FaultSlowHeaders = "slow-headers"
	// FaultReset closes the connection without an answer (after Delay,
	// if set): a BinderHub that is gone, as its clients see it
	// (connection reset, or a dial that times out).
	FaultReset = "reset"
)

// Fault is a misbehaviour a test injects with SetFault or POST
// /_sim/fault; the zero Fault (mode "") is none.
type Fault struct {
	Mode string `json:"mode"`
	// Specs, when set, limits the fault to /build requests whose
	// "<provider>/<spec>" it matches (unanchored); empty: every /build.
	Specs string `json:"specs,omitempty"`
	// After is how many events a stream sends before a stall, close or
	// garbage; 0 means 2 (BinderHub's waiting event and the first build
	// log line).
	After int `json:"after,omitempty"`
	// Status and RetryAfter (seconds, sent when > 0) for FaultStatus.
	Status     int `json:"status,omitempty"`
	RetryAfter int `json:"retry_after,omitempty"`
	// Delay is the wait before anything is sent, for FaultSlowHeaders
	// (then a normal answer) and FaultStatus (then the status: a proxy
	// in front timing out).
	Delay time.Duration `json:"delay,omitempty"`
}

type compiledFault struct {
	Fault
	specs *regexp.Regexp
}

// SetFault makes the simulator misbehave as f says from the next /build
// request on, until the next SetFault (the zero Fault ends it). Streams
// already open keep the fault they started with.
func (s *Server) SetFault(f Fault) error {
	cf := &compiledFault{Fault: f}
	switch f.Mode {
	case "":
		cf = nil
	case FaultStall, FaultClose, FaultGarbage:
		if f.After < 0 {
			return fmt.Errorf("%w: fault after %d events is negative", ErrConfig, f.After)
		}
		if f.After == 0 {
			cf.After = 2
		}
	case FaultStatus:
		if f.Status < 400 || f.Status > 599 || f.Delay < 0 {
			return fmt.Errorf("%w: fault status %d (delay %v) is not an HTTP error status after a wait", ErrConfig, f.Status, f.Delay)
		}
	case FaultReset:
		if f.Delay < 0 {
			return fmt.Errorf("%w: reset delay %v is negative", ErrConfig, f.Delay)
		}
	case FaultSlowHeaders:
		if f.Delay <= 0 {
			return fmt.Errorf("%w: slow-headers fault needs a positive delay", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: unknown fault mode %q", ErrConfig, f.Mode)
	}
	if cf != nil && f.Specs != "" {
		re, err := regexp.Compile(f.Specs)
		if err != nil {
			return fmt.Errorf("%w: fault specs: %w", ErrConfig, err)
		}
		cf.specs = re
	}
	s.mu.Lock()
	s.fault = cf
	s.mu.Unlock()
	return nil
}

// faultFor returns the fault that applies to a /build of key, or nil.
func (s *Server) faultFor(key string) *compiledFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f == nil || (f.specs != nil && !f.specs.MatchString(key)) {
		return nil
	}
	s.stats.Faulted++
	return f
}

// beforeStream applies the faults that strike before any event. It
// reports whether the request was answered (the handler must stop).
func (s *Server) beforeStream(ctx context.Context, w http.ResponseWriter, f *compiledFault) bool {
	if f.Mode != FaultStatus && f.Mode != FaultSlowHeaders && f.Mode != FaultReset {
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return true
		}
	}
	if f.Mode == FaultReset {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = c.Close()
			return true
		}
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream instead
	}
	if f.Mode == FaultStatus {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		http.Error(w, http.StatusText(f.Status)+" (fakebinder fault injection)", f.Status)
		return true
	}
	return false
}

// errFaultClose ends a stream as FaultClose asks.
var errFaultClose = errors.New("fakebinder: stream closed by fault injection")

// garbage is what FaultGarbage sends: an error page, no SSE field in it.
const garbage = "<html><head><title>502 Bad Gateway</title></head>\n<body>upstream went away</body></html>\n"

// strike applies a mid-stream fault once the stream has sent its After
// events: it blocks (stall, garbage) until the request ends, or returns
// errFaultClose. It returns nil while the stream may go on.
func (st *stream) strike() error {
	f := st.fault
	if f == nil || f.Mode == FaultStatus || f.Mode == FaultSlowHeaders || st.sent < f.After {
		return nil
	}
	switch f.Mode {
	case FaultClose:
		return errFaultClose
	case FaultGarbage:
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := st.rw.Write([]byte(garbage)); err != nil {
				return err
			}
			if err := http.NewResponseController(st.rw).Flush(); err != nil {
				return err
			}
			select {
			case <-tick.C:
			case <-st.ctx.Done():
				return st.ctx.Err()
			}
		}
	}
	<-st.ctx.Done() // stall
	return st.ctx.Err()
}

// serveFault answers /_sim/fault: POST a JSON Fault to set it ({} ends
// it), GET to read the current one.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		f := Fault{}
		if s.fault != nil {
			f = s.fault.Fault
		}
		s.mu.Unlock()
		writeJSON(w, f)
	case http.MethodPost:
		var f Fault
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "fakebinder: reading the fault: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFault(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, f)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
