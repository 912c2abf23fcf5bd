package collapse

import "testing"

func TestBreakerStateTextRoundTrips(t *testing.T) {
	for s, text := range map[BreakerState]string{Closed: "closed", HalfOpen: "half-open", Open: "open"} {
		got, err := s.MarshalText()
		if err != nil || string(got) != text {
			t.Errorf("%d.MarshalText() = %q, %v; want %q", s, got, err, text)
		}
		var back BreakerState
		if err := back.UnmarshalText([]byte(text)); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", text, back, err, s)
		}
	}
	var b BreakerState
	if err := b.UnmarshalText([]byte("ajar")); err == nil {
		t.Error("UnmarshalText accepted an unknown state")
	}
}
