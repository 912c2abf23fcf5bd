// Package anypack packs a proto message into an Any, the one way every
// xDS package here does it: deterministically (map keys sorted), so equal
// input gives equal bytes and content versions do not move on a no-op;
// or, for a message whose version is not taken from its bytes, in map
// order (Unsorted). It must never build or validate resources; it only
// packs.
package anypack

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Must packs m. Packing a well-formed generated message cannot fail, so
// a failure is a bug and panics.
func Must(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("anypack: packing %T: %v", m, err))
	}
	return a
}

// Unsorted packs m without sorting its maps' keys, which on a map of
// thousands of entries costs about a third of the packing. Equal input
// may give different bytes (Go randomises map order), so it is only for a
// message whose content version does not come from its bytes, or whose
// maps hold at most one entry. Envoy reads the map as a map either way.
func Unsorted(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{}); err != nil {
		panic(fmt.Sprintf("anypack: packing %T: %v", m, err))
	}
	return a
}
