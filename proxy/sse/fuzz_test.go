package sse

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader, as a broken or hostile
// upstream could: it must never panic or hand out an event over
// MaxEventSize, and what it reads must survive being framed again (the
// gate re-frames every event it forwards) unchanged.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"data: {\"phase\":\"waiting\",\"message\":\"Waiting for build to start...\\n\"}\n\n",
		":keepalive\n\n",
		"data: a\ndata: b\n\n",
		"data:x\r\n\r\n",
		"event: x\nid: 1\nretry: 5\ndata: {}\n\n",
		":  two spaces\n\n",
		"data\n\n",
		"data: partial",
		"\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		first := readAll(t, in)
		var framed bytes.Buffer
		for _, e := range first {
			framed.Write(e.Frame())
		}
		again := readAll(t, framed.Bytes())
		if len(again) != len(first) {
			t.Fatalf("%q: %d events, re-framed %q: %d", in, len(first), framed.Bytes(), len(again))
		}
		for i := range first {
			a, b := first[i], again[i]
			if !bytes.Equal(a.Data, b.Data) || (a.Data == nil) != (b.Data == nil) || a.Comment != b.Comment || a.Phase != b.Phase {
				t.Fatalf("%q: event %d %+v, re-framed %+v", in, i, a, b)
			}
		}
	})
}

func readAll(t *testing.T, in []byte) []Event {
	t.Helper()
	var out []Event
	rd := NewReader(bytes.NewReader(in))
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) || errors.Is(err, ErrEventTooLarge) {
			return out
		}
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(e.Data) > MaxEventSize {
			t.Fatalf("%q: an event of %d bytes", in, len(e.Data))
		}
		out = append(out, e)
	}
}
