package sse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Phases BinderHub sends, in the order a launch goes through them.
const (
	PhaseWaiting   = "waiting"
	PhaseFetching  = "fetching"
	PhaseBuilding  = "building"
	PhaseUnknown   = "unknown"
	PhaseFailed    = "failed"
	PhaseBuilt     = "built"
	PhaseLaunching = "launching"
	PhaseReady     = "ready"
)

// MaxEventSize bounds one event so a broken upstream cannot make a reader
// buffer without limit. repo2docker log lines are far below it.
const MaxEventSize = 1 << 20

// ErrEventTooLarge is returned by Reader.Next for an event over MaxEventSize.
var ErrEventTooLarge = errors.New("sse: event larger than 1 MiB")

// Event is one dispatched SSE event or one comment line.
type Event struct {
	// Data is the event's data, lines joined by "\n"; nil for a comment.
	Data []byte
	// Comment is the text after ':' for a comment line (BinderHub's
	// keepalives); empty for a data event.
	Comment string
	// Phase is the "phase" field of Data when Data is a JSON object.
	Phase string
}

// IsComment reports whether e is a comment line rather than a data event.
func (e Event) IsComment() bool { return e.Data == nil }

// Payload is the JSON object BinderHub puts in a /build event. Unknown
// fields are kept by callers that forward Event.Data unchanged; Payload is
// for code that makes or inspects events.
type Payload struct {
	Phase      string `json:"phase"`
	Message    string `json:"message,omitempty"`
	StatusCode int    `json:"status_code,omitempty"`
	ImageName  string `json:"imageName,omitempty"`

	// Fields of the "ready" event.
	Image                   string `json:"image,omitempty"`
	RepoURL                 string `json:"repo_url,omitempty"`
	Token                   string `json:"token,omitempty"`
	BinderRefURL            string `json:"binder_ref_url,omitempty"`
	BinderLaunchHost        string `json:"binder_launch_host,omitempty"`
	BinderRequest           string `json:"binder_request,omitempty"`
	BinderPersistentRequest string `json:"binder_persistent_request,omitempty"`
	BinderClientIP          string `json:"binder_client_ip,omitempty"`
	URL                     string `json:"url,omitempty"`
}

// Decode parses e.Data as a Payload.
func (e Event) Decode() (Payload, error) {
	var p Payload
	if e.IsComment() {
		return p, errors.New("sse: decoding a comment as a payload")
	}
	if err := json.Unmarshal(e.Data, &p); err != nil {
		return p, fmt.Errorf("sse: decoding event data: %w", err)
	}
	return p, nil
}

// Frame returns the wire bytes of e.
func (e Event) Frame() []byte {
	if e.IsComment() {
		if len(e.Comment) > 0 && e.Comment[0] == ' ' {
			// A reader drops one space after ':'; keep the comment's own.
			return []byte(": " + e.Comment + "\n\n")
		}
		return []byte(":" + e.Comment + "\n\n")
	}
	var b bytes.Buffer
	b.Grow(len(e.Data) + len("data: \n\n")) // one line, as events mostly are: one allocation
	for line := range bytes.SplitSeq(e.Data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// NewEvent encodes p as a data event.
func NewEvent(p Payload) Event {
	data, err := json.Marshal(p)
	if err != nil {
		// Payload has only string and int fields; Marshal cannot fail.
		panic(fmt.Sprintf("sse: encoding payload: %v", err))
	}
	return Event{Data: data, Phase: p.Phase}
}

// Failed is the event BinderHub sends for every rejection on /build.
func Failed(statusCode int, message string) Event {
	return NewEvent(Payload{Phase: PhaseFailed, StatusCode: statusCode, Message: message})
}

// Keepalive is BinderHub's keepalive comment.
var Keepalive = Event{Comment: "keepalive"}

// phaseOf reads only the "phase" field so forwarding does not pay for a
// full decode of every log line.
func phaseOf(data []byte) string {
	var p struct {
		Phase string `json:"phase"`
	}
	if json.Unmarshal(data, &p) != nil {
		return ""
	}
	return p.Phase
}

// Reader parses an SSE stream.
type Reader struct {
	s *bufio.Scanner
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), MaxEventSize)
	return &Reader{s: s}
}

// Next returns the next event or comment. It returns io.EOF at a clean end
// of stream; a partial event at the end is dropped, as the SSE spec says.
func (r *Reader) Next() (Event, error) {
	var data []byte
	have := false
	for r.s.Scan() {
		line := r.s.Bytes()
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			if have {
				return Event{Data: data, Phase: phaseOf(data)}, nil
			}
		case line[0] == ':':
			if !have {
				return Event{Comment: string(bytes.TrimPrefix(line[1:], []byte(" ")))}, nil
			}
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			if string(field) != "data" {
				continue // event, id and retry fields carry nothing BinderHub uses
			}
			if len(data)+len(value) > MaxEventSize {
				return Event{}, ErrEventTooLarge
			}
			if have {
				data = append(data, '\n')
			}
			data = append(data, value...)
			if data == nil {
				data = []byte{}
			}
			have = true
		}
	}
	if err := r.s.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Event{}, ErrEventTooLarge
		}
		return Event{}, err
	}
	return Event{}, io.EOF
}

// Writer writes events to an HTTP response and flushes each one, so a
// client sees every phase as it happens.
type Writer struct {
	w  io.Writer
	rc *http.ResponseController
}

// NewWriter returns a Writer on w. Start must be called before the first
// event when w is an http.ResponseWriter whose headers are not yet sent.
func NewWriter(w http.ResponseWriter) *Writer {
	return &Writer{w: w, rc: http.NewResponseController(w)}
}

// Start sends the headers of an SSE response with status 200 and extra
// headers (such as Retry-After) already set on the ResponseWriter.
func Start(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := NewWriter(w)
	_ = sw.rc.Flush()
	return sw
}

// Write sends e and flushes it.
func (sw *Writer) Write(e Event) error {
	if _, err := sw.w.Write(e.Frame()); err != nil {
		return fmt.Errorf("sse: writing event: %w", err)
	}
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("sse: flushing event: %w", err)
	}
	return nil
}
