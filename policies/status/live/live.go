package live

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

// MaxHotSpecs is how many specs status.hotSpecs lists (the CRD's
// MaxItems): enough to see which repositories a storm is about, small
// enough for `kubectl get -o yaml`.
const MaxHotSpecs = 16

// Load is what one replica's gate holds now, as served on its GET /state.
type Load struct {
	// Waiters counts held launches by governing policy
	// ("LaunchPolicy/<ns>/<name>", or "default" for specs no LaunchPolicy
	// selects), over all of the replica's held launches.
	Waiters map[string]int `json:"waiters,omitempty"`
	// Hot are the replica's busiest specs with their governing policy.
	Hot []Spec `json:"hot,omitempty"`
}

// Spec is one spec a replica holds launches for.
type Spec struct {
	Key     string `json:"key"`
	Policy  string `json:"policy"`
	Waiters int    `json:"waiters"`
	// Stage is how far the replica's build of the spec is; empty when it
	// has none (a spec listed for its open breaker). The field is optional
	// on the wire both ways: a replica that predates it sends none (Sum
	// then shows no stage from it), and one that predates it ignores it.
	Stage v1alpha1.BuildStage `json:"stage,omitempty"`
	// BreakerOpenUntil is set while the spec's breaker is open.
	BreakerOpenUntil *time.Time `json:"breakerOpenUntil,omitempty"`
}

// Totals is one policy's counters summed over replicas.
type Totals struct {
	Waiters int32
	// Hot holds at most MaxHotSpecs specs, busiest first.
	Hot []v1alpha1.HotSpec
}

// PolicyName is how a Load names the LaunchPolicy ns/name.
func PolicyName(ns, name string) string {
	return v1alpha1.KindLaunchPolicy + "/" + ns + "/" + name
}

// Sum adds up the replicas' loads per policy. A spec held on several
// replicas (launches of one repository spread over the gates) is one
// entry with the sum of its waiters, the latest breaker end and the least
// advanced stage (see earlierStage). Specs without held launches or an
// open breaker are left out.
func Sum(loads []Load) map[string]Totals {
	waiters := map[string]int{}
	type hot struct {
		policy  string
		waiters int
		until   *time.Time
		stage   v1alpha1.BuildStage
	}
	specs := map[string]*hot{} // by policy + "\x00" + key
	for _, l := range loads {
		for p, n := range l.Waiters {
			waiters[p] += n
		}
		for _, s := range l.Hot {
			if s.Waiters <= 0 && s.BreakerOpenUntil == nil {
				continue
			}
			k := s.Policy + "\x00" + shownSpec(s.Key)
			h := specs[k]
			if h == nil {
				h = &hot{policy: s.Policy}
				specs[k] = h
			}
			h.waiters += s.Waiters
			if s.Waiters > 0 {
				// A replica holding none of the spec's launches (a leader
				// building alone) says nothing about the build they wait for.
				h.stage = earlierStage(h.stage, s.Stage)
			}
			if s.BreakerOpenUntil != nil && (h.until == nil || s.BreakerOpenUntil.After(*h.until)) {
				h.until = s.BreakerOpenUntil
			}
		}
	}
	out := map[string]Totals{}
	for p, n := range waiters {
		out[p] = Totals{Waiters: clamp(n)}
	}
	for _, k := range slices.Sorted(maps.Keys(specs)) {
		h := specs[k]
		t := out[h.policy]
		hs := v1alpha1.HotSpec{Spec: k[len(h.policy)+1:], Waiters: clamp(h.waiters), Stage: h.stage}
		if h.until != nil {
			// The API stores seconds; a finer time would read back as a change.
			hs.BreakerOpenUntil = &metav1.Time{Time: h.until.UTC().Truncate(time.Second)}
		}
		t.Hot = append(t.Hot, hs)
		out[h.policy] = t
	}
	for p, t := range out {
		slices.SortStableFunc(t.Hot, func(a, b v1alpha1.HotSpec) int { return cmp.Compare(b.Waiters, a.Waiters) })
		if len(t.Hot) > MaxHotSpecs {
			t.Hot = t.Hot[:MaxHotSpecs]
		}
		out[p] = t
	}
	return out
}

// maxSpecChars is the CRD's limit on hotSpecs[].spec (MaxLength, in
// characters). The gate holds launches of longer specs (a long ref or
// clone URL, up to its 2,048 bytes), and one such key in a patch would
// make the API server refuse the policy's whole status every round.
const maxSpecChars = 1024

// shownSpec is key as status lists it: cut to maxSpecChars characters,
// the last of them an ellipsis, when longer.
func shownSpec(key string) string {
	if utf8.RuneCountInString(key) <= maxSpecChars {
		return key
	}
	r := []rune(key)
	return string(r[:maxSpecChars-1]) + "…"
}

// earlierStage merges the stages of one spec on two replicas: the less
// advanced of a and b, ignoring an empty stage and one this version does
// not know (a newer replica's: written to status it would fail the CRD's
// enum, and with it the whole patch).
//
// A spec should be held on one replica only (Envoy hashes each spec to one
// gate), but while the ring changes (a replica joins or leaves) launches
// of one spec can be held on two, each behind its own build. The least
// advanced stage is shown because Releasing should mean that no held
// launch of the spec still waits for a build, which is what an operator
// reads it for; and it changes only when some replica's stage does, where
// the stage of the replica holding the most launches could flip back and
// forth with the counts, and write the status each time.
func earlierStage(a, b v1alpha1.BuildStage) v1alpha1.BuildStage {
	ra, rb := stageRank(a), stageRank(b)
	switch {
	case rb == 0:
		return a
	case ra == 0 || rb < ra:
		return b
	default:
		return a
	}
}

// stageRank orders the stages a build goes through; 0 for none, or one
// this version does not know.
func stageRank(s v1alpha1.BuildStage) int {
	switch s {
	case v1alpha1.BuildStageStarting:
		return 1
	case v1alpha1.BuildStageBuilding:
		return 2
	case v1alpha1.BuildStageReleasing:
		return 3
	default:
		return 0
	}
}

func clamp(n int) int32 { return int32(min(n, 1<<31-1)) }

// Desired returns the status cur should carry for totals t, and whether
// it differs from cur. Only the counters are compared: an unchanged count
// is not written again, so a quiet site costs no API writes, and
// countersReportedAt is when the counters last changed (or were first
// reported). cur is not modified.
func Desired(cur v1alpha1.LaunchPolicyStatus, t Totals, now time.Time) (v1alpha1.LaunchPolicyStatus, bool) {
	out := *cur.DeepCopy()
	if cur.CountersReportedAt != nil && cur.Waiters == t.Waiters && equality.Semantic.DeepEqual(nilIfEmpty(cur.HotSpecs), nilIfEmpty(t.Hot)) {
		return out, false
	}
	out.Waiters = t.Waiters
	out.HotSpecs = slices.Clone(t.Hot)
	out.CountersReportedAt = &metav1.Time{Time: now.UTC().Truncate(time.Second)}
	return out, true
}

func nilIfEmpty(h []v1alpha1.HotSpec) []v1alpha1.HotSpec {
	if len(h) == 0 {
		return nil
	}
	return h
}

// Writer writes the counters of LaunchPolicies through the status
// subresource.
type Writer struct {
	c   client.Client
	log *slog.Logger
	now func() time.Time
}

// NewWriter returns a Writer; log nil means slog.Default(), now nil
// time.Now.
func NewWriter(c client.Client, log *slog.Logger, now func() time.Time) (*Writer, error) {
	if c == nil {
		return nil, errors.New("live status writer: a client is required")
	}
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Writer{c: c, log: log, now: now}, nil
}

// patch sets the three counter fields of obj's status with a JSON merge
// patch that names them explicitly: waiters 0 is written as 0 (kubectl's
// Waiting column shows 0, not <none>), and an empty hotSpecs as null,
// which removes the list. No optimistic lock: these fields have one
// writer (the elected replica), and a patch that names only them leaves
// the Accepted writer's conditions and the webhook's fields alone.
func (w *Writer) patch(ctx context.Context, obj *v1alpha1.LaunchPolicy, want v1alpha1.LaunchPolicyStatus) error {
	body, err := json.Marshal(map[string]any{"status": map[string]any{
		"waiters":            want.Waiters,
		"hotSpecs":           nilIfEmpty(want.HotSpecs),
		"countersReportedAt": want.CountersReportedAt,
	}})
	if err != nil {
		return fmt.Errorf("encoding the patch: %w", err)
	}
	return w.c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body))
}

// Write brings the counters of every policy up to date with the loads of
// all replicas. policies are the objects as last seen (an informer's
// copies); one failed write does not stop the others. It returns how many
// objects it wrote and every error, joined.
func (w *Writer) Write(ctx context.Context, policies []v1alpha1.LaunchPolicy, loads []Load) (int, error) {
	totals := Sum(loads)
	var errs []error
	n := 0
	for i := range policies {
		p := &policies[i]
		want, changed := Desired(p.Status, totals[PolicyName(p.Namespace, p.Name)], w.now())
		if !changed {
			continue
		}
		err := w.patch(ctx, p.DeepCopy(), want)
		switch {
		case err == nil:
			n++
			w.log.Debug("live counters written", "namespace", p.Namespace, "name", p.Name, "waiters", want.Waiters, "hot_specs", len(want.HotSpecs))
		case apierrors.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("write live counters of LaunchPolicy %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return n, errors.Join(errs...)
}
