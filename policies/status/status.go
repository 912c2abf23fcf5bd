package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// maxMessage bounds the condition message: the API allows 32 KiB, but a
// long list of field errors is unreadable in kubectl; the first ones are
// enough to act on.
const maxMessage = 4096

// acceptedMessage is the message of Accepted=True.
const acceptedMessage = "accepted into the policy snapshot"

// Desired returns the status conditions and observedGeneration an object
// whose validation result is st should carry, and whether they differ from
// cur. cur is not modified. now stamps a condition whose status changes.
func Desired(cur v1alpha1.PolicyConditions, st snapshot.ObjectStatus, now time.Time) (v1alpha1.PolicyConditions, bool) {
	out := v1alpha1.PolicyConditions{
		Conditions:         slices.Clone(cur.Conditions),
		ObservedGeneration: st.Generation,
	}
	cond := metav1.Condition{
		Type:               v1alpha1.ConditionAccepted,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonAccepted,
		Message:            acceptedMessage,
		ObservedGeneration: st.Generation,
		// The API stores seconds; a finer time would read back as a change.
		LastTransitionTime: metav1.NewTime(now.Truncate(time.Second)),
	}
	switch {
	case st.Err != nil && st.Partial:
		cond.Status = metav1.ConditionFalse
		cond.Reason = v1alpha1.ReasonEntriesIgnored
		cond.Message = invalidMessage(st.Err, partialNote)
	case st.Err != nil:
		cond.Status = metav1.ConditionFalse
		cond.Reason = v1alpha1.ReasonInvalid
		cond.Message = invalidMessage(st.Err, "")
	}
	changed := meta.SetStatusCondition(&out.Conditions, cond)
	return out, changed || cur.ObservedGeneration != st.Generation
}

// partialNote ends the message of a ban in force without some entries.
const partialNote = " (these entries are ignored; the rest of the ban is in force)"

func invalidMessage(e *snapshot.ObjectError, note string) string {
	msg := e.Errs.ToAggregate().Error()
	if len(e.Errs) == 0 {
		msg = e.Error()
	}
	if len(msg)+len(note) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage-len(" …")-len(note)], "") + " …"
	}
	return msg + note
}

// Config wires a Writer.
type Config struct {
	// Client writes the status subresource; reads after a conflict go
	// through it too.
	Client client.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Writer writes Accepted conditions.
type Writer struct {
	cfg Config
}

// NewWriter returns a Writer.
func NewWriter(cfg Config) (*Writer, error) {
	if cfg.Client == nil {
		return nil, errors.New("policy status writer: Client is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Writer{cfg: cfg}, nil
}

// Write brings the status of every object named in results up to date.
// bans and policies are the objects as last seen (an informer's copies);
// results without an object, and objects that were deleted meanwhile, are
// skipped. It returns how many objects it wrote and every error, joined:
// one failed write does not stop the others.
func (w *Writer) Write(ctx context.Context, bans []v1alpha1.RepoBan, policies []v1alpha1.LaunchPolicy, results []snapshot.ObjectStatus) (int, error) {
	objs := make(map[string]client.Object, len(bans)+len(policies))
	for i := range bans {
		objs[key(v1alpha1.KindRepoBan, &bans[i])] = &bans[i]
	}
	for i := range policies {
		objs[key(v1alpha1.KindLaunchPolicy, &policies[i])] = &policies[i]
	}
	var errs []error
	written := 0
	for _, st := range results {
		obj, ok := objs[st.Kind+"/"+st.Namespace+"/"+st.Name]
		if !ok {
			continue
		}
		wrote, err := w.writeOne(ctx, obj.DeepCopyObject().(client.Object), st)
		if err != nil {
			errs = append(errs, fmt.Errorf("write status of %s/%s/%s: %w", st.Kind, st.Namespace, st.Name, err))
			continue
		}
		if wrote {
			written++
		}
	}
	return written, errors.Join(errs...)
}

// writeOne patches obj's status if it must change. On a conflict it reads
// the object again once: if its generation moved on, the next build will
// describe it, so this result is dropped.
func (w *Writer) writeOne(ctx context.Context, obj client.Object, st snapshot.ObjectStatus) (bool, error) {
	for attempt := 0; ; attempt++ {
		if obj.GetGeneration() != st.Generation {
			return false, nil // stale result; the newer generation gets its own
		}
		cur, ok := conditionsOf(obj)
		if !ok {
			return false, fmt.Errorf("unexpected object type %T", obj)
		}
		want, changed := Desired(*cur, st, w.cfg.Now())
		if !changed {
			return false, nil
		}
		orig := obj.DeepCopyObject().(client.Object)
		*cur = want
		// The optimistic lock keeps a concurrent writer's conditions: a merge
		// patch replaces the whole conditions list.
		err := w.cfg.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			w.cfg.Logger.Debug("policy status written", "kind", st.Kind, "namespace", st.Namespace,
				"name", st.Name, "generation", st.Generation, "accepted", st.Err == nil)
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		case apierrors.IsConflict(err) && attempt == 0:
			if err := w.cfg.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				return false, fmt.Errorf("read after conflict: %w", err)
			}
		default:
			return false, err
		}
	}
}

func conditionsOf(obj client.Object) (*v1alpha1.PolicyConditions, bool) {
	switch o := obj.(type) {
	case *v1alpha1.RepoBan:
		return &o.Status.PolicyConditions, true
	case *v1alpha1.LaunchPolicy:
		return &o.Status.PolicyConditions, true
	}
	return nil, false
}

func key(kind string, obj client.Object) string {
	return kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
}
