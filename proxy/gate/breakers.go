package gate

import (
	"iter"
	"maps"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/binderguard/binderguard/proxy/collapse"
)

// breaker is one build key's circuit breaker. Every call into cb happens
// with Gate.mu held; OnStateChange therefore touches only atomics and
// metrics.
type breaker struct {
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	threshold atomic.Int64
	openFor   time.Duration
	openUntil atomic.Int64 // unix nanoseconds; valid while open
	lastUsed  time.Time    // guarded by Gate.mu
	paths     []string     // guarded by Gate.mu
	policy    string       // Policy.Name of the last launch judged, for State; guarded by Gate.mu
}

func (b *breaker) state() (collapse.BreakerState, time.Time) {
	switch b.cb.State() {
	case gobreaker.StateOpen:
		return collapse.Open, time.Unix(0, b.openUntil.Load())
	case gobreaker.StateHalfOpen:
		return collapse.HalfOpen, time.Time{}
	default:
		return collapse.Closed, time.Time{}
	}
}

// breakers are the per-key breakers. The gobreaker has no registry, so
// this keeps them in a map and evicts idle closed ones, so that a crawl
// over many specs cannot grow it forever. Guarded by Gate.mu.
type breakers struct {
	max  int           // Config.MaxBreakers
	idle time.Duration // Config.BreakerIdle
	// busy reports whether key has a flight: its breaker is kept.
	busy func(key string) bool
	// changed is told of every state change; it must only touch atomics
	// and metrics (it runs inside calls into the breaker).
	changed func(key string, from, to gobreaker.State)
	m       map[string]*breaker
}

// get returns key's breaker, making it if needed. The open duration is
// fixed when the breaker is made; the failure threshold follows the
// latest policy.
func (bs *breakers) get(key string, l Launch, now time.Time) *breaker {
	b, ok := bs.m[key]
	if !ok {
		if len(bs.m) >= bs.max {
			bs.evict(len(bs.m)/10 + 1)
		}
		b = &breaker{openFor: l.BreakerOpen}
		if b.openFor <= 0 {
			b.openFor = time.Minute
		}
		b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        key,
			MaxRequests: 1, // half-open lets one probe build through
			Timeout:     b.openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return int64(c.ConsecutiveFailures) >= max(b.threshold.Load(), 1)
			},
			// No build ran: nothing to count for or against it.
			IsExcluded: func(err error) bool { return err == errAbandoned || err == errRefused },
			OnStateChange: func(name string, from, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					b.openUntil.Store(time.Now().Add(b.openFor).UnixNano())
				}
				bs.changed(name, from, to)
			},
		})
		bs.m[key] = b
	}
	b.threshold.Store(int64(l.BreakerFailures))
	b.lastUsed = now
	return b
}

// lookup returns key's breaker, nil if it has none.
func (bs *breakers) lookup(key string) *breaker { return bs.m[key] }

// all are the breakers by key.
func (bs *breakers) all() iter.Seq2[string, *breaker] { return maps.All(bs.m) }

// len is how many breakers are kept.
func (bs *breakers) len() int { return len(bs.m) }

// evict drops up to n breakers that are closed and have no flight. A
// closed breaker forgets only its count of recent failures.
func (bs *breakers) evict(n int) {
	for key, b := range bs.m {
		if n <= 0 {
			return
		}
		if bs.busy(key) || b.cb.State() != gobreaker.StateClosed {
			continue
		}
		delete(bs.m, key)
		n--
	}
}

// sweep drops the closed breakers without a flight idle past idle.
func (bs *breakers) sweep(now time.Time) {
	for key, b := range bs.m {
		if now.Sub(b.lastUsed) < bs.idle {
			continue
		}
		if bs.busy(key) || b.cb.State() != gobreaker.StateClosed {
			continue
		}
		delete(bs.m, key)
	}
}

// sweep evicts breakers idle past BreakerIdle and expired built marks.
func (g *Gate) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.breakers.sweep(now)
	for key, until := range g.builtUntil {
		if now.After(until) {
			delete(g.builtUntil, key)
		}
	}
}
