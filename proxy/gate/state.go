package gate

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/proxy/collapse"
)

// State is what the gate publishes for the control plane (edge rules for
// hot specs) and for status: the specs with held launches or an open
// breaker. The gate's totals of held launches and upstream launch streams
// are its binderguard_waiters and binderguard_upstream_streams gauges.
type State struct {
	Hot []HotSpec
	// PolicyWaiters counts held launches by the Policy.Name that governs
	// their flight, over every flight (Hot is cut to Config.HotSpecs);
	// policies holding none are absent.
	PolicyWaiters map[string]int
}

// HotSpec is one build key the edge may want to answer for the gate.
type HotSpec struct {
	Key string
	// Policy is the Policy.Name that governs the key's flight ("" for a
	// spec listed only for its open breaker).
	Policy string
	// Paths are the request paths ("/build/<provider>/<spec>") seen for
	// the key, at most a few spellings.
	Paths []string
	// Stage is how far the key's flight is: Starting, Building or
	// Releasing, NoFlight for a key listed only for its open breaker. It
	// encodes as "starting", "building", "releasing" or "".
	Stage      collapse.Stage
	Waiters    int
	MaxWaiters int
	// Full: at MaxWaiters; new launches of it are shed with 429.
	Full bool
	// Breaker is the key's breaker; while open, launches get a 503 failed
	// event until OpenUntil. It encodes as "closed", "half-open" or "open".
	Breaker   collapse.BreakerState
	OpenUntil time.Time
}

func buildPaths(specs []string) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = "/build/" + s
	}
	return out
}

// State returns the gate's state now.
func (g *Gate) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	var st State
	seen := make(map[string]bool, len(g.flights))
	for key, f := range g.flights {
		if n := f.followers.Len(); n > 0 {
			if st.PolicyWaiters == nil {
				st.PolicyWaiters = make(map[string]int)
			}
			st.PolicyWaiters[f.policy] += n
		}
		h := HotSpec{Key: key, Policy: f.policy, Paths: buildPaths(f.paths), Stage: f.stage, Waiters: f.followers.Len(), MaxWaiters: f.launch.MaxWaiters, Breaker: collapse.Closed}
		h.Full = h.MaxWaiters > 0 && h.Waiters >= h.MaxWaiters
		if b := g.breakers.lookup(key); b != nil {
			s, until := b.state()
			h.Breaker, h.OpenUntil = s, until
		}
		st.Hot = append(st.Hot, h)
		seen[key] = true
	}
	for key, b := range g.breakers.all() {
		if seen[key] {
			continue
		}
		if s, until := b.state(); s == collapse.Open {
			st.Hot = append(st.Hot, HotSpec{Key: key, Policy: b.policy, Paths: buildPaths(b.paths), Breaker: s, OpenUntil: until})
		}
	}
	// Open breakers first (the edge answers them), then full, then busiest.
	slices.SortFunc(st.Hot, func(a, b HotSpec) int {
		if c := cmp.Compare(b2i(b.Breaker == collapse.Open), b2i(a.Breaker == collapse.Open)); c != 0 {
			return c
		}
		if c := cmp.Compare(b2i(b.Full), b2i(a.Full)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Waiters, a.Waiters); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(st.Hot) > g.cfg.HotSpecs {
		st.Hot = st.Hot[:g.cfg.HotSpecs]
	}
	return st
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Subscribe returns a channel that holds the latest published State: the
// current one at once, then each change (intermediate ones may be
// skipped). It is closed when ctx ends. Publishing needs Run.
func (g *Gate) Subscribe(ctx context.Context) <-chan State { return g.pub.latest.Subscribe(ctx) }

// Run publishes State changes and evicts idle breakers until ctx ends.
func (g *Gate) Run(ctx context.Context) error {
	tick := time.NewTicker(g.cfg.StateInterval)
	defer tick.Stop()
	sweep := time.NewTicker(10 * time.Second)
	defer sweep.Stop()
	g.pub.publishIfChanged(time.Now(), g.State)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			g.pub.publishIfChanged(now, g.State)
		case now := <-sweep.C:
			g.sweep(now)
		}
	}
}

// publisher publishes the gate's State when it changed: to subscribers,
// and the hot specs to metrics.
type publisher struct {
	// dirty is set by whatever may change State; the next tick looks.
	dirty       atomic.Bool
	latest      latest.Value[State]
	m           *metrics
	metricSpecs int // Config.MetricSpecs
}

// publishIfChanged publishes state() if something was marked dirty or an
// open breaker's time ran out, and it differs from the last published.
func (p *publisher) publishIfChanged(now time.Time, state func() State) {
	last := p.latest.Load()
	expired := false
	for _, h := range last.Hot {
		if h.Breaker == collapse.Open && !now.Before(h.OpenUntil) {
			expired = true // an open breaker half-opens by itself: tell the edge
		}
	}
	if !p.dirty.Swap(false) && !expired {
		return
	}
	st := state()
	p.updateHotMetrics(st)
	if gocmp.Equal(st, last, cmpopts.EquateEmpty()) {
		return
	}
	p.latest.Store(st)
}

func (p *publisher) updateHotMetrics(st State) {
	p.m.hotWaiters.Reset()
	open := 0
	shown := 0
	for _, h := range st.Hot {
		if h.Breaker == collapse.Open {
			open++
		}
		if h.Waiters > 0 && shown < p.metricSpecs {
			p.m.hotWaiters.WithLabelValues(h.Key).Set(float64(h.Waiters))
			shown++
		}
	}
	p.m.breakersOpen.Set(float64(open))
}
