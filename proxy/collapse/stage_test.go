package collapse

import "testing"

func TestStageTextRoundTrips(t *testing.T) {
	for s, text := range map[Stage]string{NoFlight: "", Starting: "starting", Building: "building", Releasing: "releasing"} {
		got, err := s.MarshalText()
		if err != nil || string(got) != text {
			t.Errorf("%d.MarshalText() = %q, %v; want %q", s, got, err, text)
		}
		var back Stage
		if err := back.UnmarshalText([]byte(text)); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", text, back, err, s)
		}
	}
	var s Stage
	if err := s.UnmarshalText([]byte("pushing")); err == nil {
		t.Error("UnmarshalText accepted an unknown stage")
	}
}
