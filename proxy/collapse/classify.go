package collapse

import (
	"encoding/json"

	"github.com/binderguard/binderguard/proxy/sse"
)

// Kind is what one event on a leader's upstream stream means for the
// spec's flight.
type Kind int

const (
	// Private events go to the leader's own client only: waiting, launching,
	// ready, comments, anything after built, anything with a token or url,
	// anything the gate does not recognise.
	Private Kind = iota
	// Log events are build-log lines: the leader's client gets them and so
	// does every follower (live and replayed).
	Log
	// Built means the image exists: the leader's client gets the event, the
	// followers are released to make their own requests.
	Built
	// BuildFailed means the build failed: the leader's client gets the
	// event, the followers get a failed event of their own, the breaker
	// records a failure.
	BuildFailed
	// Rejected is a failed event with a status_code before built: BinderHub
	// refused the leader's own request (rate limit, ban_networks, bad
	// token...). It is the leader's alone; another follower leads next.
	Rejected
)

func (k Kind) String() string {
	return [...]string{"private", "log", "built", "build-failed", "rejected"}[k]
}

// sharedFields are the only fields a Log event may carry. Anything else
// (token, url, image, binder_* ...) could belong to one user's launch, so
// an event with any other field is never shared.
var sharedFields = map[string]bool{"phase": true, "message": true}

// Classify says what an event of a leader's stream means. built reports
// whether the leader's stream has already shown the built phase: after it
// every event is the leader's own launch.
func Classify(e sse.Event, built bool) Kind {
	if e.IsComment() || built {
		return Private
	}
	switch e.Phase {
	case sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseUnknown:
		if onlyShared(e.Data) {
			return Log
		}
		return Private
	case sse.PhaseBuilt:
		return Built
	case sse.PhaseFailed:
		var p struct {
			StatusCode int `json:"status_code"`
		}
		if json.Unmarshal(e.Data, &p) == nil && p.StatusCode != 0 {
			return Rejected
		}
		return BuildFailed
	}
	return Private
}

func onlyShared(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	for k := range m {
		if !sharedFields[k] {
			return false
		}
	}
	return true
}

// Terminal reports whether phase ends a launch: after it the stream no
// longer costs BinderHub a launch, whatever the client does with it.
func Terminal(phase string) bool {
	return phase == sse.PhaseReady || phase == sse.PhaseFailed
}
