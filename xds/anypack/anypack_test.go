package anypack

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// A map packs to the same bytes every time (Go randomises map order, so
// a non-deterministic marshal of a map with several keys differs between
// runs now and then).
func TestMustIsDeterministic(t *testing.T) {
	s := eightFields(t)
	first := Must(s)
	if first.GetTypeUrl() != "type.googleapis.com/google.protobuf.Struct" {
		t.Fatalf("type URL %q", first.GetTypeUrl())
	}
	for range 50 {
		if again := Must(s); !bytes.Equal(again.GetValue(), first.GetValue()) {
			t.Fatal("two packings of one message differ")
		}
	}
}

// Unsorted packs the same content as Must (its bytes may differ in map
// order only).
func TestUnsortedPacksTheSameContent(t *testing.T) {
	s := eightFields(t)
	sorted, unsorted := Must(s), Unsorted(s)
	if unsorted.GetTypeUrl() != sorted.GetTypeUrl() {
		t.Fatalf("type URL %q, Must's %q", unsorted.GetTypeUrl(), sorted.GetTypeUrl())
	}
	var got structpb.Struct
	if err := unsorted.UnmarshalTo(&got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, s) {
		t.Errorf("unpacked %v, packed %v", &got, s)
	}
}

// eightFields is a Struct whose map has enough keys for Go's random map
// order to show.
func eightFields(t *testing.T) *structpb.Struct {
	t.Helper()
	fields := map[string]any{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		fields[k] = k
	}
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
