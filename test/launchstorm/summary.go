package launchstorm

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// maxSamples bounds the distinct error and failure messages kept.
const maxSamples = 5

// Summary is what a storm produced. Its JSON is the launchstorm output.
type Summary struct {
	Clients int `json:"clients"`
	Ready   int `json:"ready"`
	Failed  int `json:"failed"`
	Errors  int `json:"errors"`
	// ByStatus counts failed launches by status code ("none" when the
	// failed event had no status_code).
	ByStatus map[string]int `json:"by_status"`
	// Non200 counts failed launches answered with a non-2xx HTTP status
	// (which the JS client's source means to retry on 429/5xx; the pinned
	// 0.5.0 gives up and loses the message) rather than a failed event.
	Non200 int `json:"non_200"`
	// DistinctTokens counts distinct non-empty tokens in ready events.
	DistinctTokens int `json:"distinct_tokens"`
	// Time to ready of the ready launches, in seconds.
	P50ReadyS float64 `json:"p50_ready_s"`
	P90ReadyS float64 `json:"p90_ready_s"`
	P99ReadyS float64 `json:"p99_ready_s"`
	MaxReadyS float64 `json:"max_ready_s"`
	// Time to first response byte of every launch that got one, seconds.
	P50TTFBS float64 `json:"p50_ttfb_s"`
	P90TTFBS float64 `json:"p90_ttfb_s"`
	P99TTFBS float64 `json:"p99_ttfb_s"`
	MaxTTFBS float64 `json:"max_ttfb_s"`
	// Requests counts HTTP requests; Retries the ones beyond the first of
	// each client.
	Requests int `json:"requests"`
	Retries  int `json:"retries"`
	// Phases counts the clients that saw each phase.
	Phases map[string]int `json:"phases"`
	// FailureMessages and ErrorMessages count up to 5 distinct messages.
	FailureMessages map[string]int `json:"failure_messages,omitempty"`
	ErrorMessages   map[string]int `json:"error_messages,omitempty"`
	// DurationS is the wall time of the storm, in seconds.
	DurationS float64 `json:"duration_s"`
	// Mix summarises the background launches (all entries together), with
	// one Summary per spec in Mix.Specs when there are several.
	Mix   *Summary           `json:"mix,omitempty"`
	Specs map[string]Summary `json:"specs,omitempty"`
	// SimStats is the JSON fetched from Config.StatsURL.
	SimStats json.RawMessage `json:"sim_stats,omitempty"`
	// StatsError says why SimStats is missing when it was asked for.
	StatsError string `json:"stats_error,omitempty"`

	// Results are the per-client results (not in the JSON).
	Results []Result `json:"-"`
}

// Summarize computes a Summary of results (without Mix, SimStats or
// DurationS).
func Summarize(results []Result) Summary {
	s := Summary{
		Clients:  len(results),
		ByStatus: map[string]int{},
		Phases:   map[string]int{},
		Results:  results,
	}
	tokens := map[string]struct{}{}
	var ready, ttfb []float64
	for _, r := range results {
		s.Requests += r.Requests
		if r.Requests > 1 {
			s.Retries += r.Requests - 1
		}
		for _, p := range r.Phases {
			s.Phases[p]++
		}
		if r.TTFB > 0 {
			ttfb = append(ttfb, r.TTFB.Seconds())
		}
		switch r.Outcome {
		case OutcomeReady:
			s.Ready++
			ready = append(ready, r.TimeToReady.Seconds())
			if r.Ready.Token != "" {
				tokens[r.Ready.Token] = struct{}{}
			}
		case OutcomeFailed:
			s.Failed++
			key := "none"
			if r.StatusCode != 0 {
				key = strconv.Itoa(r.StatusCode)
			}
			s.ByStatus[key]++
			if r.HTTPStatus != 0 && (r.HTTPStatus < 200 || r.HTTPStatus > 299) {
				s.Non200++
			}
			s.FailureMessages = addSample(s.FailureMessages, r.Message)
		default:
			s.Errors++
			s.ErrorMessages = addSample(s.ErrorMessages, r.Message)
		}
	}
	s.DistinctTokens = len(tokens)
	slices.Sort(ready)
	slices.Sort(ttfb)
	s.P50ReadyS, s.P90ReadyS, s.P99ReadyS = Percentile(ready, 50), Percentile(ready, 90), Percentile(ready, 99)
	s.MaxReadyS = Percentile(ready, 100)
	s.P50TTFBS, s.P90TTFBS, s.P99TTFBS = Percentile(ttfb, 50), Percentile(ttfb, 90), Percentile(ttfb, 99)
	s.MaxTTFBS = Percentile(ttfb, 100)
	return s
}

// addSample counts msg in m while m holds fewer than maxSamples distinct
// messages.
func addSample(m map[string]int, msg string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	if _, ok := m[msg]; ok || len(m) < maxSamples {
		m[msg]++
	}
	return m
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted values
// by the nearest-rank method: the smallest value with at least p% of the
// values at or below it. It returns 0 for no values; p <= 0 gives the
// minimum. Results are rounded to the microsecond's worth of seconds so
// the JSON stays readable.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	// p*n first: 99*100/100 is exact where 0.99*100 is not.
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = min(max(rank, 1), len(sorted))
	return round(sorted[rank-1])
}

func round(sec float64) float64 {
	return math.Round(sec*1e6) / 1e6
}

// seconds converts d for the JSON summary.
func seconds(d time.Duration) float64 { return round(d.Seconds()) }
