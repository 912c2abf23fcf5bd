// Package anypack packs a proto message into an Any, the one way every
// xDS package here does it: deterministically (map keys sorted), so equal
// input gives equal bytes and content versions do not move on a no-op.
// It must never build or validate resources; it only packs.
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
