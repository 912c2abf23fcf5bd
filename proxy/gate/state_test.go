package gate_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
)

// The breaker state is typed in Go but keeps the words it had on the
// wire, for anything that reads a State encoded as JSON.
func TestHotSpecBreakerEncodesAsItsName(t *testing.T) {
	b, err := json.Marshal(gate.HotSpec{Key: "k", Breaker: collapse.Open})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Breaker":"open"`) {
		t.Fatalf("encoded %s, want Breaker as \"open\"", b)
	}
	var back gate.HotSpec
	if err := json.Unmarshal(b, &back); err != nil || back.Breaker != collapse.Open {
		t.Fatalf("decoded %+v, %v; want an open breaker", back, err)
	}
}

// The flight stage is typed in Go but keeps the words it had on the wire.
func TestHotSpecStageEncodesAsItsName(t *testing.T) {
	b, err := json.Marshal(gate.HotSpec{Key: "k", Stage: collapse.Building})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Stage":"building"`) {
		t.Fatalf("encoded %s, want Stage as \"building\"", b)
	}
	var back gate.HotSpec
	if err := json.Unmarshal(b, &back); err != nil || back.Stage != collapse.Building {
		t.Fatalf("decoded %+v, %v; want a building flight", back, err)
	}
}
