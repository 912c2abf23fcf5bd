package collapse

import (
	"fmt"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// StaleTurn is what one stale launch of a flight does next.
type StaleTurn int

const (
	// StaleGo: a stale launch of this flight found the last good image
	// (its first event was built), so this one goes at once.
	StaleGo StaleTurn = iota
	// StaleProbe: nobody has tried yet; this launch goes first, alone.
	StaleProbe
	// StaleWait: another launch is probing; wait for its answer.
	StaleWait
	// StaleHold: a stale launch of this flight did not find the image;
	// be held like any launch of a building spec.
	StaleHold
)

func (t StaleTurn) String() string {
	return [...]string{"go", "probe", "wait", "hold"}[t]
}

// StaleFlight is what a flight knows about its stale launches.
type StaleFlight struct {
	Verified bool // a stale launch's first event was built
	Failed   bool // a stale launch's first event was not
	Probing  bool // a stale launch is out and has not answered yet
}

// NextStale says what a stale launch does. One launch probes first so
// that, should the last good image be gone (a registry clean-up, or it is
// the very commit now building), only one launch asks BinderHub for it:
// otherwise every stale launch would start or attach to a build of it,
// the storm that collapsing prevents.
func NextStale(f StaleFlight) StaleTurn {
	switch {
	case f.Failed:
		return StaleHold
	case f.Verified:
		return StaleGo
	case f.Probing:
		return StaleWait
	}
	return StaleProbe
}

// StaleFound reports whether the first event of a stale launch's upstream
// stream shows the last good image exists ("Found built image"). Anything
// else (waiting for a build, a failure, a ban) means the launch must not
// go on as a stale one.
func StaleFound(first sse.Event) bool { return first.Phase == sse.PhaseBuilt }

// StaleNotice is the one event a stale launch's user gets before
// BinderHub's own: that a newer version is being built, since when, and
// the date of the version they get instead.
func StaleNotice(buildStarted, version, now time.Time) sse.Event {
	msg := fmt.Sprintf("binderguard: A new version of this repository is being built (started %s). You are getting the version from %s now.\n",
		ago(now.Sub(buildStarted)), version.UTC().Format("2 January 2006, 15:04 UTC"))
	return sse.NewEvent(sse.Payload{Phase: sse.PhaseWaiting, Message: msg})
}

// ago says how long ago something happened, in the unit a person would.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute ago"
	case d < 2*time.Minute:
		return "1 minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d/time.Minute))
	case d < 2*time.Hour:
		return "1 hour ago"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}
