// Package existing acts on binder pods that were already running when a
// RepoBan appeared: admission only sees new pods, and a build pod of a
// mining repository can run for hours. For a ban with onExisting Report it
// lists the running build and user pods of the banned repositories on the
// ban's status; with onExisting Delete it also deletes them.
//
// Pods are matched by the same evaluation code as admission
// (webhook/evaluate over a one-ban snapshot), so a pod is acted on exactly
// when the webhook would have refused it. It runs only on the elected
// leader, lists pods straight from the API server when a ban changes
// (bans are rare; a cluster-wide pod informer is not worth its memory),
// and must never touch pods that are not binder pods.
package existing

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/webhook/evaluate"
)

// maxListed is the most pods named on a ban's status (the CRD's MaxItems).
const maxListed = 64

// Reconciler scans for running pods of a RepoBan's repositories.
type Reconciler struct {
	// Client reads RepoBans (cached), deletes pods and patches ban status.
	Client client.Client
	// Pods lists pods; use the manager's API reader (uncached).
	Pods client.Reader
	// Namespace limits the pods scanned to one namespace ("" = all), for
	// installs whose RBAC is a namespaced Role.
	Namespace string
	// Parser names the site's extra provider prefixes (nil: built-in only).
	Parser *spec.Parser
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Setup registers the reconciler with mgr, scanning pods in namespace (""
// = all). It reacts to RepoBan creation and spec changes (generation), not
// to its own status writes.
func Setup(mgr manager.Manager, namespace string, parser *spec.Parser, logger *slog.Logger) error {
	r := &Reconciler{Client: mgr.GetClient(), Pods: mgr.GetAPIReader(), Namespace: namespace, Parser: parser, Logger: logger}
	err := builder.ControllerManagedBy(mgr).
		Named("binderguard-existing-pods").
		For(&v1alpha1.RepoBan{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("registering the existing-pods controller: %w", err)
	}
	return nil
}

// Reconcile scans once for the named RepoBan.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := r.logger().With("repoban", req.NamespacedName.String())
	var rb v1alpha1.RepoBan
	if err := r.Client.Get(ctx, req.NamespacedName, &rb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if rb.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	switch rb.Spec.OnExisting {
	case v1alpha1.OnExistingReport, v1alpha1.OnExistingDelete:
	default:
		return reconcile.Result{}, nil
	}
	matched, err := r.scan(ctx, &rb)
	if err != nil {
		return reconcile.Result{}, err
	}
	if rb.Spec.OnExisting == v1alpha1.OnExistingDelete {
		for i := range matched {
			if err := r.delete(ctx, &matched[i].pod); err != nil {
				return reconcile.Result{}, err
			}
			matched[i].entry.Action = v1alpha1.PodActionDeleted
			log.Info("deleted pod of banned repository", "namespace", matched[i].pod.Namespace, "pod", matched[i].pod.Name, "repo", matched[i].repo)
		}
	} else {
		for _, m := range matched {
			log.Info("running pod of banned repository", "namespace", m.pod.Namespace, "pod", m.pod.Name, "repo", m.repo)
		}
	}
	return reconcile.Result{}, r.report(ctx, &rb, matched)
}

type hit struct {
	pod   corev1.Pod
	repo  string
	entry v1alpha1.MatchedPod
}

// scan lists the binder pods still running and keeps those the ban alone
// would refuse at admission.
func (r *Reconciler) scan(ctx context.Context, rb *v1alpha1.RepoBan) ([]hit, error) {
	one := rb.DeepCopy()
	one.Spec.Mode = v1alpha1.Mode(evaluate.ModeEnforce) // match regardless of mode; the action is onExisting's
	snap, _ := snapshot.New([]v1alpha1.RepoBan{*one}, nil)
	if n, _ := snap.Counts(); n == 0 {
		// A ban left out is reported on its status by the policy source;
		// one in force without entries it cannot use still applies.
		return nil, nil
	}
	pols := evaluate.FromSnapshot(snap, r.Parser, r.now())
	req, err := labels.NewRequirement(evaluate.LabelComponent, selection.In, []string{evaluate.ComponentBuild, evaluate.ComponentUser})
	if err != nil {
		return nil, fmt.Errorf("building the pod selector: %w", err)
	}
	var pods corev1.PodList
	opts := []client.ListOption{client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}}
	if r.Namespace != "" {
		opts = append(opts, client.InNamespace(r.Namespace))
	}
	if err := r.Pods.List(ctx, &pods, opts...); err != nil {
		return nil, fmt.Errorf("listing binder pods: %w", err)
	}
	var out []hit
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		v := evaluate.Validate(p, pols)
		for _, f := range v.Findings {
			if f.Policy != snapshotRef(rb) {
				continue
			}
			role := v1alpha1.PodRoleUser
			if v.Kind == evaluate.KindBuild {
				role = v1alpha1.PodRoleBuild
			}
			out = append(out, hit{pod: *p, repo: f.Repo, entry: v1alpha1.MatchedPod{
				Namespace: p.Namespace, Name: p.Name, Role: role, Action: v1alpha1.PodActionReported,
			}})
			break
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].entry.Role != out[j].entry.Role {
			return out[i].entry.Role == v1alpha1.PodRoleBuild // build pods first: they are the expensive ones
		}
		return out[i].pod.Namespace+"/"+out[i].pod.Name < out[j].pod.Namespace+"/"+out[j].pod.Name
	})
	return out, nil
}

func snapshotRef(rb *v1alpha1.RepoBan) string {
	return v1alpha1.KindRepoBan + "/" + rb.Namespace + "/" + rb.Name
}

// delete removes one pod, only the very pod that was matched (UID
// precondition), and treats one already gone as done.
func (r *Reconciler) delete(ctx context.Context, p *corev1.Pod) error {
	uid := p.UID
	err := r.Client.Delete(ctx, p, client.Preconditions{UID: &uid})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("deleting pod %s/%s of a banned repository: %w", p.Namespace, p.Name, err)
}

// report writes matchedPods and matchedPodCount with a merge patch on the
// status subresource, leaving the conditions to the policy status writer.
func (r *Reconciler) report(ctx context.Context, rb *v1alpha1.RepoBan, matched []hit) error {
	entries := make([]v1alpha1.MatchedPod, 0, min(len(matched), maxListed))
	for i := 0; i < len(matched) && i < maxListed; i++ {
		entries = append(entries, matched[i].entry)
	}
	// A rescan after a restart finds nothing where pods were deleted: keep
	// that record rather than erase it.
	if len(matched) == 0 && onlyDeleted(rb.Status.MatchedPods) {
		return nil
	}
	orig := rb.DeepCopy()
	rb.Status.MatchedPods = entries
	rb.Status.MatchedPodCount = int32(len(matched))
	if err := r.Client.Status().Patch(ctx, rb, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("reporting matched pods on %s: %w", snapshotRef(rb), err)
	}
	return nil
}

func onlyDeleted(ps []v1alpha1.MatchedPod) bool {
	for _, p := range ps {
		if p.Action != v1alpha1.PodActionDeleted {
			return false
		}
	}
	return len(ps) > 0
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}
