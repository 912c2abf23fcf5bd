package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

// BanCounts are what one replica saw a RepoBan do since its last flush.
type BanCounts struct {
	Blocked, Refused int64
}

// Tally collects, on one replica, what each RepoBan blocked at the gate
// and refused at the webhook, until a flush adds it to the ban's status.
// Every replica keeps its own and adds its own share to the status: the
// counts are events, and adding them where they happen needs no
// exchange between replicas and loses nothing when the leader changes.
// The zero value is ready to use.
type Tally struct {
	mu      sync.Mutex
	pending map[string]BanCounts // by "RepoBan/<ns>/<name>"
}

// Blocked counts one launch policy (a "RepoBan/<ns>/<name>") refused at
// the gate. Other policy names (file policies, defaults) are ignored.
func (t *Tally) Blocked(policy string) { t.add(policy, BanCounts{Blocked: 1}) }

// Refused counts one pod policy refused at the webhook.
func (t *Tally) Refused(policy string) { t.add(policy, BanCounts{Refused: 1}) }

func (t *Tally) add(policy string, c BanCounts) {
	if !strings.HasPrefix(policy, v1alpha1.KindRepoBan+"/") {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = map[string]BanCounts{}
	}
	p := t.pending[policy]
	p.Blocked += c.Blocked
	p.Refused += c.Refused
	t.pending[policy] = p
}

// take returns the pending counts and starts afresh.
func (t *Tally) take() map[string]BanCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending
	t.pending = nil
	return p
}

// giveBack returns counts a flush could not write, for the next one.
func (t *Tally) giveBack(policy string, c BanCounts) { t.add(policy, c) }

// AddBanCounts returns cur with c added and the report stamped with now,
// and whether anything changed (nothing to add: no write). cur is not
// modified.
func AddBanCounts(cur v1alpha1.RepoBanStatus, c BanCounts, now time.Time) (v1alpha1.RepoBanStatus, bool) {
	out := *cur.DeepCopy()
	if c.Blocked <= 0 && c.Refused <= 0 {
		return out, false
	}
	out.BlockedLaunches += max(c.Blocked, 0)
	out.RefusedPods += max(c.Refused, 0)
	out.CountersReportedAt = &metav1.Time{Time: now.UTC().Truncate(time.Second)}
	return out, true
}

// FlushBans adds this replica's pending counts to each RepoBan's status,
// reading the ban from r (the API server, not a cache: an addition to a
// stale count would lose another replica's) and writing with the
// optimistic lock, once more after a conflict. Counts that cannot be
// written stay pending for the next flush; counts of a ban that no
// longer exists are dropped. It returns how many bans it wrote.
func (t *Tally) FlushBans(ctx context.Context, c client.Client, r client.Reader, log *slog.Logger, now time.Time) (int, error) {
	pending := t.take()
	var errs []error
	n := 0
	for _, policy := range slices.Sorted(maps.Keys(pending)) {
		counts := pending[policy]
		parts := strings.Split(policy, "/") // "RepoBan/<ns>/<name>"
		if len(parts) != 3 {
			continue
		}
		err := addToBan(ctx, c, r, client.ObjectKey{Namespace: parts[1], Name: parts[2]}, counts, now)
		switch {
		case err == nil:
			n++
			log.Debug("ban counters written", "namespace", parts[1], "name", parts[2], "blocked", counts.Blocked, "refused", counts.Refused)
		case apierrors.IsNotFound(err):
		default:
			t.giveBack(policy, counts)
			errs = append(errs, fmt.Errorf("adding counters to RepoBan %s/%s: %w", parts[1], parts[2], err))
		}
	}
	return n, errors.Join(errs...)
}

func addToBan(ctx context.Context, c client.Client, r client.Reader, key client.ObjectKey, counts BanCounts, now time.Time) error {
	for attempt := 0; ; attempt++ {
		var ban v1alpha1.RepoBan
		if err := r.Get(ctx, key, &ban); err != nil {
			return err
		}
		orig := ban.DeepCopy()
		ban.Status, _ = AddBanCounts(ban.Status, counts, now)
		err := c.Status().Patch(ctx, &ban, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if err == nil || !apierrors.IsConflict(err) || attempt > 0 {
			return err
		}
	}
}
