package evaluate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limited are the resources a LaunchPolicy can bound on build pods.
var limited = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

// MutateBuild brings a build pod within b in place: every container (and
// init container) gets a limit for each bounded resource, limits and
// requests above the maximum are clamped, missing requests get the policy's
// defaults (never above the container's limit), and activeDeadlineSeconds
// is set or lowered to the policy's. It is idempotent: a pod it has already
// mutated comes back unchanged.
func MutateBuild(pod *corev1.Pod, b BuildPolicy) {
	for i := range pod.Spec.InitContainers {
		clampContainer(&pod.Spec.InitContainers[i].Resources, b.Resources)
	}
	for i := range pod.Spec.Containers {
		clampContainer(&pod.Spec.Containers[i].Resources, b.Resources)
	}
	if d := b.ActiveDeadlineSeconds; d != nil {
		if cur := pod.Spec.ActiveDeadlineSeconds; cur == nil || *cur > *d {
			v := *d
			pod.Spec.ActiveDeadlineSeconds = &v
		}
	}
}

func clampContainer(r *corev1.ResourceRequirements, pol corev1.ResourceRequirements) {
	for _, name := range limited {
		max, bounded := pol.Limits[name]
		if bounded {
			if lim, ok := r.Limits[name]; !ok || lim.Cmp(max) > 0 {
				set(&r.Limits, name, max)
			}
			if req, ok := r.Requests[name]; ok && req.Cmp(max) > 0 {
				set(&r.Requests, name, max)
			}
		}
		def, hasDefault := pol.Requests[name]
		if _, ok := r.Requests[name]; ok || !hasDefault {
			continue
		}
		if lim, ok := r.Limits[name]; ok && def.Cmp(lim) > 0 {
			def = lim
		}
		set(&r.Requests, name, def)
	}
}

func set(l *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	if *l == nil {
		*l = corev1.ResourceList{}
	}
	(*l)[name] = q.DeepCopy()
}

// ValidateBuild checks the final state of a build pod against b: each
// container has a limit no higher than the maximum for every bounded
// resource, no request above it, and the pod has a deadline no longer than
// the policy's. This is what the validating webhook enforces after the
// mutating one ran (or failed open).
func ValidateBuild(pod *corev1.Pod, b BuildPolicy) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for i := range pod.Spec.InitContainers {
		errs = append(errs, validateContainer(spec.Child("initContainers").Index(i).Child("resources"), pod.Spec.InitContainers[i].Resources, b.Resources)...)
	}
	for i := range pod.Spec.Containers {
		errs = append(errs, validateContainer(spec.Child("containers").Index(i).Child("resources"), pod.Spec.Containers[i].Resources, b.Resources)...)
	}
	if pr := pod.Spec.Resources; pr != nil {
		errs = append(errs, validateMaxima(spec.Child("resources"), *pr, b.Resources)...)
	}
	if d := b.ActiveDeadlineSeconds; d != nil {
		p := spec.Child("activeDeadlineSeconds")
		switch cur := pod.Spec.ActiveDeadlineSeconds; {
		case cur == nil:
			errs = append(errs, field.Required(p, fmt.Sprintf("build pods must have a deadline of at most %ds", *d)))
		case *cur > *d:
			errs = append(errs, field.Invalid(p, *cur, fmt.Sprintf("must be at most %ds", *d)))
		}
	}
	return errs
}

func validateContainer(p *field.Path, r corev1.ResourceRequirements, pol corev1.ResourceRequirements) field.ErrorList {
	var errs field.ErrorList
	for _, name := range limited {
		max, bounded := pol.Limits[name]
		if !bounded {
			continue
		}
		if _, ok := r.Limits[name]; !ok {
			errs = append(errs, field.Required(p.Child("limits").Key(string(name)), fmt.Sprintf("a limit of at most %s is required", max.String())))
		}
	}
	return append(errs, validateMaxima(p, r, pol)...)
}

// validateMaxima reports limits and requests above the policy's maxima.
func validateMaxima(p *field.Path, r corev1.ResourceRequirements, pol corev1.ResourceRequirements) field.ErrorList {
	var errs field.ErrorList
	for _, list := range []struct {
		name string
		l    corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, name := range limited {
			max, bounded := pol.Limits[name]
			v, ok := list.l[name]
			if bounded && ok && v.Cmp(max) > 0 {
				errs = append(errs, field.Invalid(p.Child(list.name).Key(string(name)), v.String(), fmt.Sprintf("exceeds the maximum %s", max.String())))
			}
		}
	}
	return errs
}

// ValidateResizeErrors checks an in-place resize (UPDATE of pods/resize) of a
// build pod: the new requests and limits must stay within the maxima, in
// its containers and in its sidecars (restartable init containers, which
// Kubernetes resizes in place too). A missing limit or deadline is not a
// resize's doing, so it is not checked.
func ValidateResizeErrors(pod *corev1.Pod, b BuildPolicy) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "containers")
	for i := range pod.Spec.Containers {
		errs = append(errs, validateMaxima(p.Index(i).Child("resources"), pod.Spec.Containers[i].Resources, b.Resources)...)
	}
	p = field.NewPath("spec", "initContainers")
	for i, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			errs = append(errs, validateMaxima(p.Index(i).Child("resources"), c.Resources, b.Resources)...)
		}
	}
	return errs
}
