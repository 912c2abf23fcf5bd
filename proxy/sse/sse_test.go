package sse

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReaderParsesBinderHubStreams(t *testing.T) {
	tests := map[string]struct {
		in   string
		want []Event
	}{
		"a data event and a keepalive": {
			in: "data: {\"phase\": \"waiting\", \"message\": \"Waiting for build to start...\\n\"}\n\n:keepalive\n\n",
			want: []Event{
				{Data: []byte(`{"phase": "waiting", "message": "Waiting for build to start...\n"}`), Phase: "waiting"},
				{Comment: "keepalive"},
			},
		},
		"multi-line data is joined with newlines": {
			in:   "data: a\ndata: b\n\n",
			want: []Event{{Data: []byte("a\nb")}},
		},
		"CRLF line endings and ignored fields": {
			in:   "event: x\r\nid: 4\r\ndata: {\"phase\":\"ready\"}\r\n\r\n",
			want: []Event{{Data: []byte(`{"phase":"ready"}`), Phase: "ready"}},
		},
		"a partial event at the end is dropped": {
			in:   "data: {\"phase\":\"built\"}\n\ndata: {\"phase\":\"laun",
			want: []Event{{Data: []byte(`{"phase":"built"}`), Phase: "built"}},
		},
		"empty data line dispatches an empty event": {
			in:   "data:\n\n",
			want: []Event{{Data: []byte{}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in))
			var got []Event
			for {
				e, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				got = append(got, e)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReaderRejectsOversizedEvents(t *testing.T) {
	in := "data: " + strings.Repeat("x", MaxEventSize+10) + "\n\n"
	_, err := NewReader(strings.NewReader(in)).Next()
	if !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("Next error = %v, want ErrEventTooLarge", err)
	}
}

func TestFrameRoundTrips(t *testing.T) {
	events := []Event{
		Failed(429, "Too many launches\nretry later"),
		NewEvent(Payload{Phase: PhaseReady, Token: "t0k", URL: "http://x/user/a/"}),
		Keepalive,
	}
	var wire strings.Builder
	for _, e := range events {
		wire.Write(e.Frame())
	}
	r := NewReader(strings.NewReader(wire.String()))
	for i, want := range events {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}
	p, err := NewEvent(Payload{Phase: PhaseFailed, StatusCode: 503}).Decode()
	if err != nil || p.StatusCode != 503 || p.Phase != PhaseFailed {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
}

func TestStartSendsSSEHeadersAndFlushes(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "30")
	sw := Start(rec)
	if err := sw.Write(Failed(503, "open")); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	if !rec.Flushed {
		t.Fatal("response was not flushed")
	}
	want := "data: {\"phase\":\"failed\",\"message\":\"open\",\"status_code\":503}\n\n"
	if rec.Body.String() != want {
		t.Fatalf("body %q, want %q", rec.Body.String(), want)
	}
}
