package status

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/kube"
)

// Relay hands the latest policy build from the informer source (on every
// replica) to the Writer (on the elected leader only): it is a
// controller-runtime Runnable that needs leader election. A replica that
// becomes leader writes the latest build at once.
type Relay struct {
	w   *Writer
	log *slog.Logger

	mu     sync.Mutex
	latest *kube.Rebuild
	kick   latest.Kick
}

// NewRelay returns a Relay writing through w; nil log discards.
func NewRelay(w *Writer, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{w: w, log: log, kick: latest.NewKick()}
}

// Offer keeps a copy of b (the source reuses its own) and wakes the
// writer. It never fails: retries are the writer's, on the leader. It
// fits kube.Config.OnRebuild.
func (r *Relay) Offer(_ context.Context, b kube.Rebuild) error {
	cp := kube.Rebuild{Snapshot: b.Snapshot, Objects: append([]snapshot.ObjectStatus(nil), b.Objects...)}
	for i := range b.RepoBans {
		cp.RepoBans = append(cp.RepoBans, *b.RepoBans[i].DeepCopy())
	}
	for i := range b.LaunchPolicies {
		cp.LaunchPolicies = append(cp.LaunchPolicies, *b.LaunchPolicies[i].DeepCopy())
	}
	r.mu.Lock()
	r.latest = &cp
	r.mu.Unlock()
	r.wake()
	return nil
}

func (r *Relay) wake() { r.kick.Poke() }

// NeedLeaderElection is true: only the leader writes status.
func (*Relay) NeedLeaderElection() bool { return true }

// Start writes the latest build's statuses until ctx ends, retrying failed
// writes with backoff (a conflict, the API server briefly away).
func (r *Relay) Start(ctx context.Context) error {
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-retry.C:
		}
		r.mu.Lock()
		b := r.latest
		r.mu.Unlock()
		if b == nil {
			continue
		}
		n, err := r.w.Write(ctx, b.RepoBans, b.LaunchPolicies, b.Objects)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("writing policy status", "err", err, "written", n, "retry_in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if n > 0 {
			r.log.Info("policy status written", "objects", n, "version", b.Snapshot.Version)
		}
	}
}
