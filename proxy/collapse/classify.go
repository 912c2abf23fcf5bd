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
	// Rejected is a failed event with a status_code before built:
	// BinderHub refused the leader's own request (BaseHandler's HTTP
	// errors, sent by BuildHandler.send_error: a bad or expired token, its
	// rate limit, ban_networks). It is the leader's alone and no build
	// failed; another follower leads next and gets its own answer.
	Rejected
	// Refused is a failed event without a status_code before the build
	// started (no waiting or log event yet): BuildHandler.get's fail() on
	// the spec itself (no such provider, a bad spec, its own banned_specs,
	// a ref that does not resolve, a launch quota). Every launch of the
	// spec would get the same answer now, so every held launch gets it
	// too, and no build failed.
	Refused
)

func (k Kind) String() string {
	return [...]string{"private", "log", "built", "build-failed", "rejected", "refused"}[k]
}

// sharedFields are the only fields a Log event may carry. Anything else
// (token, url, image, binder_* ...) could belong to one user's launch, so
// an event with any other field is never shared.
var sharedFields = map[string]bool{"phase": true, "message": true}

// Progress is how far a leader's stream has got before an event.
type Progress struct {
	// Started: the stream showed waiting or a build-log event, so the
	// request was accepted and is watching a build.
	Started bool
	// Built: the stream showed built; every later event is the leader's
	// own launch.
	Built bool
}

// Classify says what an event of a leader's stream means.
func Classify(e sse.Event, p Progress) Kind {
	if e.IsComment() || p.Built {
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
	case sse.PhaseReady:
		// Before built only in BinderHub's API-only mode (build_only=true):
		// its ready stands for built ("Done! Found built image", "Done!
		// Image built") and its handler returns after it.
		return Built
	case sse.PhaseFailed:
		var f struct {
			StatusCode int `json:"status_code"`
		}
		switch {
		case json.Unmarshal(e.Data, &f) == nil && f.StatusCode != 0:
			return Rejected
		case !p.Started:
			return Refused
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

// Rebuilding reports whether the first event of a launch that passed
// because its image was seen built shows BinderHub building instead: the
// ref moved to a new commit (a push to HEAD, as in 2018) or the image went
// away. Launches of that spec must collapse again at once, not pass for
// the rest of the built window, each of them a build watcher.
func Rebuilding(first sse.Event) bool {
	switch first.Phase {
	case sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseUnknown:
		return true
	}
	return false
}
