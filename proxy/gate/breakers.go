package gate

import (
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/binderguard/binderguard/proxy/collapse"
)

// breaker is one build key's circuit breaker. The gobreaker has no
// registry, so the gate keeps them in a map and evicts idle closed ones.
// Every call into cb happens with Gate.mu held; OnStateChange therefore
// touches only atomics and metrics.
type breaker struct {
	cb        *gobreaker.TwoStepCircuitBreaker[struct{}]
	threshold atomic.Int64
	openFor   time.Duration
	openUntil atomic.Int64 // unix nanoseconds; valid while open
	lastUsed  time.Time    // guarded by Gate.mu
	paths     []string     // guarded by Gate.mu
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

// breakerFor returns key's breaker, making it if needed. Call with g.mu
// held. The open duration is fixed when the breaker is made; the failure
// threshold follows the latest policy.
func (g *Gate) breakerFor(key string, l Launch, now time.Time) *breaker {
	b, ok := g.breakers[key]
	if !ok {
		if len(g.breakers) >= g.cfg.MaxBreakers {
			g.evictBreakersLocked(now, len(g.breakers)/10+1)
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
			IsExcluded: func(err error) bool { return err == errAbandoned },
			OnStateChange: func(name string, from, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					b.openUntil.Store(time.Now().Add(b.openFor).UnixNano())
				}
				g.m.transitions.WithLabelValues(from.String(), to.String()).Inc()
				g.log.Info("breaker state changed", "key", name, "from", from.String(), "to", to.String())
				g.dirty.Store(true)
			},
		})
		g.breakers[key] = b
	}
	b.threshold.Store(int64(l.BreakerFailures))
	b.lastUsed = now
	return b
}

// evictBreakersLocked drops up to n breakers that are closed, idle and
// have no flight, so a crawl over many specs cannot grow the map forever.
// A closed breaker forgets only its count of recent failures.
func (g *Gate) evictBreakersLocked(now time.Time, n int) {
	for key, b := range g.breakers {
		if n <= 0 {
			return
		}
		if _, busy := g.flights[key]; busy || b.cb.State() != gobreaker.StateClosed {
			continue
		}
		delete(g.breakers, key)
		n--
	}
}

// sweep evicts breakers idle past BreakerIdle and expired built marks.
func (g *Gate) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, b := range g.breakers {
		if now.Sub(b.lastUsed) < g.cfg.BreakerIdle {
			continue
		}
		if _, busy := g.flights[key]; busy || b.cb.State() != gobreaker.StateClosed {
			continue
		}
		delete(g.breakers, key)
	}
	for key, until := range g.builtUntil {
		if now.After(until) {
			delete(g.builtUntil, key)
		}
	}
}
