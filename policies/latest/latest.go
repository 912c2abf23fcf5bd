// Package latest passes on the newest of something that changes faster
// than its readers may look: Value holds one value and hands each new one
// to its subscribers (the policy snapshot, the gate's State), and Kick is
// a one-slot wakeup for a loop that redoes its work after a change.
//
// It must never block a writer on a reader, never queue: a slow reader
// misses intermediate values, never the newest, and any number of kicks
// before the loop looks are one. It runs no goroutine of its own.
package latest

import (
	"context"
	"sync"
	"sync/atomic"
)

// Value holds the latest T. Load is one atomic load, for the request
// path; components that act on every change call Subscribe. The zero
// Value holds the zero T and is ready to use.
type Value[T any] struct {
	cur  atomic.Pointer[T]
	mu   sync.Mutex // guards subs and orders stores against Subscribe
	subs map[chan T]struct{}
}

// New returns a Value holding initial.
func New[T any](initial T) *Value[T] {
	v := &Value[T]{}
	v.cur.Store(&initial)
	return v
}

// Load returns the latest value.
func (v *Value[T]) Load() T {
	if p := v.cur.Load(); p != nil {
		return *p
	}
	var zero T
	return zero
}

// Store makes x the latest and hands it to every subscriber.
func (v *Value[T]) Store(x T) {
	v.StoreIf(x, func(T) bool { return true })
}

// StoreIf is Store when replace(the value held) says so, decided under
// the lock that orders stores; it reports whether x was stored.
func (v *Value[T]) StoreIf(x T, replace func(old T) bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !replace(v.Load()) {
		return false
	}
	v.cur.Store(&x)
	for ch := range v.subs {
		select { // drop what the reader has not taken: only the newest counts
		case <-ch:
		default:
		}
		ch <- x // only stores send, under v.mu: after the drain there is room
	}
	return true
}

// Subscribe returns a channel that holds the latest value: the current one
// at once, then each new one. It holds at most one, so a slow reader
// misses intermediate values, never the newest. The channel is closed
// after ctx is done; context.AfterFunc removes the subscription, so no
// goroutine runs while ctx is live.
func (v *Value[T]) Subscribe(ctx context.Context) <-chan T {
	ch := make(chan T, 1)
	v.mu.Lock()
	if v.subs == nil {
		v.subs = make(map[chan T]struct{})
	}
	v.subs[ch] = struct{}{}
	ch <- v.Load()
	v.mu.Unlock()
	context.AfterFunc(ctx, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		delete(v.subs, ch)
		close(ch)
	})
	return ch
}

// Kick is a one-slot wakeup: a loop receives from it and redoes its work,
// and any number of Pokes while it works are one more round.
type Kick chan struct{}

// NewKick returns a Kick with nothing pending.
func NewKick() Kick { return make(Kick, 1) }

// Poke asks for one more round; it never blocks.
func (k Kick) Poke() {
	select {
	case k <- struct{}{}:
	default: // a round is due already; it will see this change too
	}
}
