package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/binderguard/binderguard/test/fakebinder"
)

// Sample is what the replay read in one second of a leg.
type Sample struct {
	// T is the time since the leg's start, in seconds.
	T float64
	// SimCPU is the simulator process's CPU over the last second, in
	// cores; SimCPUTotal its CPU seconds since the leg's start.
	SimCPU      float64
	SimCPUTotal float64
	// GuardCPU is binderguard's and Envoy's CPU over the last second, in
	// cores (guarded legs only).
	GuardCPU float64
	// Watchers and Queued are the simulator's active build watchers and
	// the requests among them waiting silently for pool slots.
	Watchers int64
	Queued   int64
	// Held is the gate's binderguard_waiters: launches held with the
	// build's log while their repository builds (guarded legs only).
	Held int64
	// StatsOK reports that Watchers and Queued were read this second.
	StatsOK bool
}

// sampler reads a leg's processes every second.
type sampler struct {
	sim        int   // simulator pid
	guard      []int // binderguard and Envoy pids, if any
	statsURL   string
	metricsURL string // binderguard's /metrics, if any
	hc         *http.Client
}

// run samples every second from t0 until ctx ends and returns the samples.
func (s *sampler) run(ctx context.Context, t0 time.Time, progress func(Sample)) []Sample {
	cpu0, _ := processCPU(s.sim)
	g0 := s.guardCPU()
	prevCPU, prevG, prevT := cpu0, g0, t0
	var out []Sample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		now := time.Now()
		dt := now.Sub(prevT).Seconds()
		smp := Sample{T: now.Sub(t0).Seconds()}
		if c, err := processCPU(s.sim); err == nil {
			smp.SimCPU = (c - prevCPU).Seconds() / dt
			smp.SimCPUTotal = (c - cpu0).Seconds()
			prevCPU = c
		}
		if len(s.guard) > 0 {
			g := s.guardCPU()
			smp.GuardCPU = (g - prevG).Seconds() / dt
			prevG = g
		}
		prevT = now
		if st, err := s.stats(ctx); err == nil {
			smp.Watchers, smp.Queued, smp.StatsOK = st.ActiveBuildWatchers, st.Queued, true
		}
		if s.metricsURL != "" {
			if held, err := s.held(ctx); err == nil {
				smp.Held = held
			}
		}
		out = append(out, smp)
		if progress != nil {
			progress(smp)
		}
	}
}

func (s *sampler) guardCPU() time.Duration {
	var sum time.Duration
	for _, pid := range s.guard {
		if c, err := processCPU(pid); err == nil {
			sum += c
		}
	}
	return sum
}

func (s *sampler) get(ctx context.Context, url string) ([]byte, error) {
	// Generous: a simulator saturated by a storm answers late, and a late
	// sample (the ticker drops the ticks it missed) beats a missing one.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}

func (s *sampler) stats(ctx context.Context) (fakebinder.Stats, error) {
	var st fakebinder.Stats
	b, err := s.get(ctx, s.statsURL)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("reading %s: %w", s.statsURL, err)
	}
	return st, nil
}

func (s *sampler) held(ctx context.Context) (int64, error) {
	b, err := s.get(ctx, s.metricsURL)
	if err != nil {
		return 0, err
	}
	return gaugeValue(string(b), "binderguard_waiters")
}

// gateCounters reads binderguard's stale-while-building counters.
func (s *sampler) gateCounters(ctx context.Context) (GateCounters, error) {
	var c GateCounters
	b, err := s.get(ctx, s.metricsURL)
	if err != nil {
		return c, err
	}
	c.StaleLaunches = counterSum(string(b), "binderguard_stale_launches_total")
	c.StaleFallbacks = counterSum(string(b), "binderguard_stale_fallbacks_total")
	return c, nil
}

// counterSum adds up every series of a counter in Prometheus text
// exposition, whatever its labels; a counter with no series yet (a
// labelled one nothing has counted) is zero.
func counterSum(text, name string) int64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric with this prefix, or a comment
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return int64(sum)
}

// gaugeValue reads an unlabelled gauge from Prometheus text exposition.
func gaugeValue(text, name string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue // another metric with this prefix, labels, or a comment
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: value %q: %w", name, f[0], err)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("metric %s not exposed", name)
}
