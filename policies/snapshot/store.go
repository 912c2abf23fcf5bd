package snapshot

import (
	"context"
	"sync"
	"sync/atomic"
)

// Store holds the latest Snapshot. Readers on the request path call Load
// (one atomic load); components that rebuild on change call Subscribe.
type Store struct {
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex // guards subs and serialises Store against Subscribe
	subs map[chan *Snapshot]struct{}
}

// NewStore returns a store holding initial (Empty() when nil).
func NewStore(initial *Snapshot) *Store {
	if initial == nil {
		initial = Empty()
	}
	s := &Store{subs: map[chan *Snapshot]struct{}{}}
	s.cur.Store(initial)
	return s
}

// Load returns the latest snapshot; never nil.
func (s *Store) Load() *Snapshot { return s.cur.Load() }

// Store makes snap the latest and tells subscribers. A snapshot with the
// Version already held changes nothing and notifies no one. It reports
// whether snap was new.
func (s *Store) Store(snap *Snapshot) bool {
	if snap == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Load().Version == snap.Version {
		return false
	}
	s.cur.Store(snap)
	for ch := range s.subs {
		offerLatest(ch, snap)
	}
	return true
}

// Subscribe returns a channel that receives the current snapshot at once
// and then every new one. It holds at most one value: a slow reader misses
// intermediate snapshots, never the latest. The channel is closed after
// ctx is done. No goroutine runs while ctx is live; context.AfterFunc
// removes the subscription when it ends.
func (s *Store) Subscribe(ctx context.Context) <-chan *Snapshot {
	ch := make(chan *Snapshot, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	ch <- s.cur.Load()
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		close(ch)
		s.mu.Unlock()
	})
	return ch
}

// offerLatest replaces whatever ch holds with snap. Only Store sends, under
// s.mu, so after the drain there is room.
func offerLatest(ch chan *Snapshot, snap *Snapshot) {
	select {
	case <-ch:
	default:
	}
	ch <- snap
}
