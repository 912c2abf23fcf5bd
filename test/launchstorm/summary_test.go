package launchstorm

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/binderguard/binderguard/proxy/sse"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	tests := map[string]struct {
		sorted []float64
		p      float64
		want   float64
	}{
		"no values give zero":                         {sorted: nil, p: 50, want: 0},
		"one value is every percentile":               {sorted: []float64{3}, p: 99, want: 3},
		"the median of an odd count is the middle":    {sorted: []float64{1, 2, 3}, p: 50, want: 2},
		"the median of an even count is the lower":    {sorted: []float64{1, 2, 3, 4}, p: 50, want: 2},
		"p99 of 1..100 is 99, not 100":                {sorted: hundred, p: 99, want: 99},
		"p90 of 1..100 is 90":                         {sorted: hundred, p: 90, want: 90},
		"p100 is the maximum":                         {sorted: hundred, p: 100, want: 100},
		"p0 is the minimum":                           {sorted: hundred, p: 0, want: 1},
		"p99 of ten values is the largest":            {sorted: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, p: 99, want: 10},
		"values are rounded to the microsecond":       {sorted: []float64{1.23456789}, p: 50, want: 1.234568},
		"a percentile above 100 is still the maximum": {sorted: []float64{1, 2}, p: 150, want: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ready := func(token string, d time.Duration) Result {
		return Result{Outcome: OutcomeReady, Requests: 1, HTTPStatus: 200, TTFB: d / 10, TimeToReady: d,
			Phases: []string{"waiting", "ready"}, Ready: sse.Payload{Phase: "ready", Token: token}}
	}
	tests := map[string]struct {
		results []Result
		check   func(t *testing.T, s Summary)
	}{
		"ready launches count distinct tokens and time percentiles": {
			results: []Result{ready("a", time.Second), ready("b", 2*time.Second), ready("a", 3*time.Second)},
			check: func(t *testing.T, s Summary) {
				want := Summary{Clients: 3, Ready: 3, DistinctTokens: 2, Requests: 3,
					P50ReadyS: 2, P90ReadyS: 3, P99ReadyS: 3, MaxReadyS: 3,
					P50TTFBS: 0.2, P90TTFBS: 0.3, P99TTFBS: 0.3, MaxTTFBS: 0.3}
				got := s
				got.ByStatus, got.Phases, got.Results = nil, nil, nil
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("summary (-want +got):\n%s", d)
				}
				if d := cmp.Diff(map[string]int{"waiting": 3, "ready": 3}, s.Phases); d != "" {
					t.Errorf("phases (-want +got):\n%s", d)
				}
			},
		},
		"failed launches are counted by status code, none when absent": {
			results: []Result{
				{Outcome: OutcomeFailed, StatusCode: 403, HTTPStatus: 200, Message: "banned", Requests: 1},
				{Outcome: OutcomeFailed, StatusCode: 429, HTTPStatus: 429, Message: "HTTP 429", Requests: 3},
				{Outcome: OutcomeFailed, HTTPStatus: 200, Message: "quota", Requests: 1},
			},
			check: func(t *testing.T, s Summary) {
				if d := cmp.Diff(map[string]int{"403": 1, "429": 1, "none": 1}, s.ByStatus); d != "" {
					t.Errorf("by_status (-want +got):\n%s", d)
				}
				if s.Failed != 3 || s.Non200 != 1 || s.Retries != 2 || s.Requests != 5 || s.Ready != 0 {
					t.Errorf("failed %d non_200 %d retries %d requests %d ready %d, want 3 1 2 5 0", s.Failed, s.Non200, s.Retries, s.Requests, s.Ready)
				}
				if s.P99ReadyS != 0 || s.MaxReadyS != 0 {
					t.Errorf("ready percentiles %v %v without ready launches, want 0", s.P99ReadyS, s.MaxReadyS)
				}
			},
		},
		"errors keep at most five distinct messages": {
			results: func() []Result {
				var rs []Result
				for _, m := range []string{"a", "b", "c", "d", "e", "f", "a"} {
					rs = append(rs, Result{Outcome: OutcomeError, Err: errors.New(m), Message: m})
				}
				return rs
			}(),
			check: func(t *testing.T, s Summary) {
				if s.Errors != 7 {
					t.Errorf("errors = %d, want 7", s.Errors)
				}
				if d := cmp.Diff(map[string]int{"a": 2, "b": 1, "c": 1, "d": 1, "e": 1}, s.ErrorMessages); d != "" {
					t.Errorf("error messages (-want +got):\n%s", d)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { tc.check(t, Summarize(tc.results)) })
	}
}
