package fakebinder

import (
	"fmt"
	"time"
)

// rateLimiter copies BinderHub's RateLimiter (binderhub/ratelimit.py): a
// fixed window per key that starts at the key's first request and resets
// period later (not a sliding window); every request decrements the
// remaining count, even past zero, and a request that takes it below zero
// is refused. Expired windows are swept every cleanEvery, as BinderHub's
// clean_seconds does. Guarded by Server.mu.
type rateLimiter struct {
	limit      int
	period     time.Duration
	windows    map[string]*rateWindow
	lastSweep  time.Time
	cleanEvery time.Duration
}

type rateWindow struct {
	remaining int
	reset     time.Time
}

func newRateLimiter(limit int, period time.Duration, now time.Time) *rateLimiter {
	return &rateLimiter{limit: limit, period: period, windows: map[string]*rateWindow{}, lastSweep: now, cleanEvery: 10 * time.Minute}
}

// increment is RateLimiter.increment: it reports the window of key after
// counting one more request, and false once the limit is exceeded.
func (rl *rateLimiter) increment(key string, now time.Time) (rateWindow, bool) {
	if now.Sub(rl.lastSweep) > rl.cleanEvery {
		rl.lastSweep = now
		for k, w := range rl.windows {
			if !w.reset.After(now) {
				delete(rl.windows, k)
			}
		}
	}
	w := rl.windows[key]
	if w == nil || w.reset.Before(now) {
		w = &rateWindow{remaining: rl.limit, reset: now.Add(rl.period)}
		rl.windows[key] = w
	}
	w.remaining--
	return *w, w.remaining >= 0
}

// exceededMessage is BaseHandler.check_rate_limit's 429 message.
func (rl *rateLimiter) exceededMessage() string {
	return fmt.Sprintf("Rate limit exceeded. Try again in %d seconds.", int(rl.period.Seconds()))
}
