package replay

import "testing"

func TestGaugeValue(t *testing.T) {
	text := `# HELP binderguard_waiters Launches held while their repository builds.
# TYPE binderguard_waiters gauge
binderguard_waiters_total 3
binderguard_waiters{x="y"} 5
binderguard_waiters 42
`
	tests := map[string]struct {
		text, name string
		want       int64
		wantErr    bool
	}{
		"the unlabelled sample, not a longer name or a labelled one": {text: text, name: "binderguard_waiters", want: 42},
		"a metric that is not exposed is an error":                   {text: text, name: "binderguard_nothing", wantErr: true},
		"a value that is not a number is an error":                   {text: "m x\n", name: "m", wantErr: true},
		"a float value is truncated":                                 {text: "m 7.9e0\n", name: "m", want: 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := gaugeValue(tc.text, tc.name)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("gaugeValue = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCounterSum(t *testing.T) {
	text := `# HELP binderguard_stale_fallbacks_total Launches admitted as stale that were held after all.
# TYPE binderguard_stale_fallbacks_total counter
binderguard_stale_fallbacks_total{reason="probe"} 2
binderguard_stale_fallbacks_total{reason="failed"} 3
binderguard_stale_fallbacks_total_created{reason="probe"} 1.7e9
binderguard_stale_launches_total{policy="de}fault"} 998
binderguard_rebuilds_seen_total 1
`
	tests := map[string]struct {
		name string
		want int64
	}{
		"every labelled series, not a longer name": {name: "binderguard_stale_fallbacks_total", want: 5},
		"a brace inside a label value":             {name: "binderguard_stale_launches_total", want: 998},
		"an unlabelled counter":                    {name: "binderguard_rebuilds_seen_total", want: 1},
		"a counter with no series is zero":         {name: "binderguard_nothing_total", want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := counterSum(text, tc.name); got != tc.want {
				t.Errorf("counterSum(%s) = %d, want %d", tc.name, got, tc.want)
			}
		})
	}
}
