package collapse

import (
	"fmt"
	"time"
)

// Role is what the gate does with one launch request.
type Role int

const (
	// Reject answers the request with one failed event at once.
	Reject Role = iota
	// Lead opens the spec's one upstream stream with the request's own
	// headers and shares its build log with the followers.
	Lead
	// Follow holds the request on a live stream until the leader's build
	// ends, then releases it as its own upstream request.
	Follow
	// Pass sends the request straight to BinderHub: its image is built, or
	// collapsing is off for its spec.
	Pass
	// Stale sends the request to BinderHub as its own launch of the last
	// commit of its ref that reached ready, while a newer commit builds
	// (the policy's staleWhileBuilding).
	Stale
)

func (r Role) String() string {
	switch r {
	case Lead:
		return "lead"
	case Follow:
		return "follow"
	case Pass:
		return "pass"
	case Stale:
		return "stale"
	default:
		return "reject"
	}
}

// Stage is how far the spec's current flight (its leader and followers) is.
type Stage int

const (
	// NoFlight means no launch of the spec is in progress at the gate.
	NoFlight Stage = iota
	// Starting means the leader's upstream stream has not shown a phase yet.
	Starting
	// Building means the leader's stream shows a build.
	Building
	// Releasing means the image is built and followers are being released.
	Releasing
)

func (s Stage) String() string {
	switch s {
	case Starting:
		return "starting"
	case Building:
		return "building"
	case Releasing:
		return "releasing"
	default:
		return ""
	}
}

// MarshalText writes the stage as String does ("starting", "building",
// "releasing", "" for NoFlight): the words the gate's State carried
// before it was typed.
func (s Stage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *Stage) UnmarshalText(text []byte) error {
	switch string(text) {
	case "":
		*s = NoFlight
	case "starting":
		*s = Starting
	case "building":
		*s = Building
	case "releasing":
		*s = Releasing
	default:
		return fmt.Errorf("flight stage %q: want starting, building, releasing or empty", text)
	}
	return nil
}

// BreakerState mirrors the spec's circuit breaker.
type BreakerState int

const (
	Closed BreakerState = iota
	HalfOpen
	Open
)

func (b BreakerState) String() string {
	switch b {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	default:
		return "closed"
	}
}

// MarshalText writes the state as String does ("closed", "half-open",
// "open"): the words the gate's State carried before it was typed.
func (b BreakerState) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (b *BreakerState) UnmarshalText(text []byte) error {
	switch string(text) {
	case "closed":
		*b = Closed
	case "half-open":
		*b = HalfOpen
	case "open":
		*b = Open
	default:
		return fmt.Errorf("breaker state %q: want closed, half-open or open", text)
	}
	return nil
}

// Shed reasons, used in failed-event messages' metrics labels.
const (
	ReasonBreakerOpen     = "breaker_open"
	ReasonWaitersSpec     = "waiters_spec"
	ReasonWaitersTotal    = "waiters_total"
	ReasonConcurrentSpec  = "concurrent_spec"
	ReasonConcurrentTotal = "concurrent_total"
)

// Limits are the caps that apply to one request: per spec from its launch
// policy, in total from the site-wide settings. Zero means no cap.
type Limits struct {
	Collapse           bool
	MaxWaiters         int
	MaxWaitersTotal    int
	MaxConcurrent      int
	MaxConcurrentTotal int
	// ShedRetryAfter is what a shed client is told to wait before retrying.
	ShedRetryAfter time.Duration
	// Stale: the spec's policy launches the last good commit while a newer
	// one builds.
	Stale bool
}

// Situation is what the gate knows about the request's spec when it arrives.
type Situation struct {
	Stage      Stage
	BuiltUntil time.Time // the image was seen built; launches pass until then
	Breaker    BreakerState
	OpenUntil  time.Time // when an open breaker turns half-open
	// Waiters are the spec's held followers; Streams its upstream launch
	// streams at the gate (leader, released followers, pass-throughs).
	Waiters, WaitersTotal int
	Streams, StreamsTotal int
	// LastGood: a commit of the spec's ref reached ready recently enough
	// to be launched while the flight builds, and no stale launch of this
	// flight has found it missing.
	LastGood bool
}

// Decision is the answer to one request.
type Decision struct {
	Role Role
	// For Reject: the failed event's status_code, the shed reason and the
	// Retry-After to send.
	StatusCode int
	Reason     string
	RetryAfter time.Duration
}

// minRetryAfter keeps Retry-After at least one second: it is sent in whole
// seconds and "0" would invite an immediate retry storm.
const minRetryAfter = time.Second

// Admit decides what to do with a request. A Lead decision still needs the
// spec's breaker to allow the request (half-open lets one probe through).
func Admit(s Situation, l Limits, now time.Time) Decision {
	if s.Breaker == Open {
		return Decision{Role: Reject, StatusCode: 503, Reason: ReasonBreakerOpen, RetryAfter: atLeast(s.OpenUntil.Sub(now))}
	}
	shed := func(reason string) Decision {
		return Decision{Role: Reject, StatusCode: 429, Reason: reason, RetryAfter: atLeast(l.ShedRetryAfter)}
	}
	roomUpstream := (l.MaxConcurrent <= 0 || s.Streams < l.MaxConcurrent) &&
		(l.MaxConcurrentTotal <= 0 || s.StreamsTotal < l.MaxConcurrentTotal)
	if s.Stage != NoFlight {
		// Only while the leader's stream shows a build: before its first
		// event the image may turn out to exist, and once built the wait
		// is short. A stale launch is an upstream stream, so it needs room
		// under the stream caps; without room holding is the cheaper
		// answer, and waiters are not shed for a stale launch's sake.
		if l.Stale && s.LastGood && s.Stage == Building && roomUpstream {
			return Decision{Role: Stale}
		}
		// Holding costs the gate a stream and BinderHub nothing, so only
		// the waiter caps apply; the releaser honours the stream caps.
		switch {
		case l.MaxWaiters > 0 && s.Waiters >= l.MaxWaiters:
			return shed(ReasonWaitersSpec)
		case l.MaxWaitersTotal > 0 && s.WaitersTotal >= l.MaxWaitersTotal:
			return shed(ReasonWaitersTotal)
		}
		return Decision{Role: Follow}
	}
	switch {
	case l.MaxConcurrent > 0 && s.Streams >= l.MaxConcurrent:
		return shed(ReasonConcurrentSpec)
	case l.MaxConcurrentTotal > 0 && s.StreamsTotal >= l.MaxConcurrentTotal:
		return shed(ReasonConcurrentTotal)
	}
	if !l.Collapse || now.Before(s.BuiltUntil) {
		return Decision{Role: Pass}
	}
	return Decision{Role: Lead}
}

func atLeast(d time.Duration) time.Duration {
	if d < minRetryAfter {
		return minRetryAfter
	}
	return d
}
