package gate

import (
	"bytes"
	"sync"

	"github.com/binderguard/binderguard/proxy/sse"
)

// ring keeps the recent build-log events of a flight for followers to
// replay and wakes followers when one is added. Followers read it at their
// own pace, so a slow follower never slows the leader or the others: one
// that falls more than the ring behind skips ahead.
type ring struct {
	maxEvents int
	maxBytes  int

	mu     sync.RWMutex
	events []sse.Event // oldest first
	bytes  int
	next   uint64 // sequence number of the next event added
	notify chan struct{}
}

func newRing(maxEvents, maxBytes int) *ring {
	return &ring{maxEvents: maxEvents, maxBytes: maxBytes, notify: make(chan struct{})}
}

func (r *ring) add(e sse.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.bytes += len(e.Data)
	for len(r.events) > r.maxEvents || (r.bytes > r.maxBytes && len(r.events) > 1) {
		r.bytes -= len(r.events[0].Data)
		r.events[0] = sse.Event{}
		r.events = r.events[1:]
	}
	if cap(r.events) > 4*r.maxEvents {
		r.events = append([]sse.Event(nil), r.events...)
	}
	r.next++
	close(r.notify)
	r.notify = make(chan struct{})
}

// since returns the events after cursor (a sequence number), the cursor
// after them, and a channel closed when another event is added.
func (r *ring) since(cursor uint64) ([]sse.Event, uint64, <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	first := r.next - uint64(len(r.events))
	if cursor < first {
		cursor = first
	}
	var out []sse.Event
	if cursor < r.next {
		out = append(out, r.events[cursor-first:]...)
	}
	return out, r.next, r.notify
}

// contains reports whether an event with this data is in the ring: a
// promoted leader's upstream stream replays the build log's tail, which the
// followers have already seen.
func (r *ring) contains(data []byte) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.events {
		if bytes.Equal(e.Data, data) {
			return true
		}
	}
	return false
}
