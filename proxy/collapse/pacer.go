package collapse

import "time"

// Pacer is a token bucket that spaces the release of held followers, so a
// finished build does not turn into a burst of launches at BinderHub.
// It is not safe for concurrent use; the gate's releaser owns one.
type Pacer struct {
	rate   float64 // releases per second; <= 0 means no pacing
	burst  float64
	tokens float64
	last   time.Time
}

// NewPacer returns a full bucket of burst (at least 1) releases refilled
// at rate per second.
func NewPacer(rate float64, burst int) *Pacer {
	b := float64(max(burst, 1))
	return &Pacer{rate: rate, burst: b, tokens: b}
}

// Reserve takes one release and returns how long to wait from now before
// doing it.
func (p *Pacer) Reserve(now time.Time) time.Duration {
	if p.rate <= 0 {
		return 0
	}
	if !p.last.IsZero() {
		p.tokens += now.Sub(p.last).Seconds() * p.rate
		if p.tokens > p.burst {
			p.tokens = p.burst
		}
	}
	p.last = now
	p.tokens--
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.rate * float64(time.Second))
}
