package snapshot

import (
	"context"

	"github.com/binderguard/binderguard/policies/latest"
)

// Store holds the latest Snapshot. Readers on the request path call Load
// (one atomic load); components that rebuild on change call Subscribe.
type Store struct {
	v *latest.Value[*Snapshot]
}

// NewStore returns a store holding initial (Empty() when nil).
func NewStore(initial *Snapshot) *Store {
	if initial == nil {
		initial = Empty()
	}
	return &Store{v: latest.New(initial)}
}

// Load returns the latest snapshot; never nil.
func (s *Store) Load() *Snapshot { return s.v.Load() }

// Store makes snap the latest and tells subscribers. A snapshot with the
// Version already held changes nothing and notifies no one. It reports
// whether snap was new.
func (s *Store) Store(snap *Snapshot) bool {
	if snap == nil {
		return false
	}
	return s.v.StoreIf(snap, func(old *Snapshot) bool { return old.Version != snap.Version })
}

// Subscribe returns a channel that receives the current snapshot at once
// and then every new one. It holds at most one value: a slow reader misses
// intermediate snapshots, never the latest. The channel is closed after
// ctx is done. No goroutine runs while ctx is live.
func (s *Store) Subscribe(ctx context.Context) <-chan *Snapshot { return s.v.Subscribe(ctx) }
