package launchstorm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// States a client can be in besides the phases of its stream.
const (
	stateConnecting = "connecting"
	stateError      = "error"
)

// Tracker counts clients by their current phase, for live progress. The
// zero value is not usable; use NewTracker. A nil *Tracker ignores updates.
type Tracker struct {
	mu      sync.Mutex
	started time.Time
	current map[int]string
	counts  map[string]int
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{started: time.Now(), current: map[int]string{}, counts: map[string]int{}}
}

func (t *Tracker) set(i int, state string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.current[i]; ok {
		if old == state {
			return
		}
		t.counts[old]--
	}
	t.current[i] = state
	t.counts[state]++
}

// Snapshot returns the number of clients in each state.
func (t *Tracker) Snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.counts)
}

// Elapsed is the time since the Tracker was made.
func (t *Tracker) Elapsed() time.Duration { return time.Since(t.started) }

// progressOrder is the order states are shown in, as a launch goes.
var progressOrder = []string{
	stateConnecting, sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseUnknown,
	sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady, sse.PhaseFailed, stateError,
}

// FormatProgress renders counts as one line, known states in launch order
// then any others alphabetically, e.g.
// "12.5s  connecting 0  waiting 180  building 20  ready 0  failed 0  error 0".
func FormatProgress(elapsed time.Duration, counts map[string]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.1fs", elapsed.Seconds())
	for _, s := range progressOrder {
		fmt.Fprintf(&b, "  %s %d", s, counts[s])
	}
	var others []string
	for s, n := range counts {
		if n != 0 && !slices.Contains(progressOrder, s) {
			others = append(others, s)
		}
	}
	slices.Sort(others)
	for _, s := range others {
		fmt.Fprintf(&b, "  %s %d", s, counts[s])
	}
	return b.String()
}
