package evaluate

import (
	"sort"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// buildPatch is the JSON patch from a build pod to its mutated copy,
// covering exactly what MutateBuild can change (container resources and
// activeDeadlineSeconds), sorted by path. It is written out directly
// rather than by diffing two encodings of the pod: a diff costs two
// marshals and two generic decodes per review, several times the rest of
// the decision.
func buildPatch(a, b *corev1.Pod) []jsonpatch.Operation {
	ops := []jsonpatch.Operation{}
	for i := range b.Spec.InitContainers {
		ops = resourceOps(ops, "/spec/initContainers/"+strconv.Itoa(i)+"/resources", a.Spec.InitContainers[i].Resources, b.Spec.InitContainers[i].Resources)
	}
	for i := range b.Spec.Containers {
		ops = resourceOps(ops, "/spec/containers/"+strconv.Itoa(i)+"/resources", a.Spec.Containers[i].Resources, b.Spec.Containers[i].Resources)
	}
	switch da, db := a.Spec.ActiveDeadlineSeconds, b.Spec.ActiveDeadlineSeconds; {
	case db == nil:
	case da == nil:
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/activeDeadlineSeconds", *db))
	case *da != *db:
		ops = append(ops, jsonpatch.NewOperation("replace", "/spec/activeDeadlineSeconds", *db))
	}
	sort.Sort(jsonpatch.ByPath(ops))
	return ops
}

func resourceOps(ops []jsonpatch.Operation, base string, a, b corev1.ResourceRequirements) []jsonpatch.Operation {
	for _, l := range []struct {
		key  string
		a, b corev1.ResourceList
	}{{"limits", a.Limits, b.Limits}, {"requests", a.Requests, b.Requests}} {
		p := base + "/" + l.key
		if len(l.a) == 0 {
			if len(l.b) > 0 {
				ops = append(ops, jsonpatch.NewOperation("add", p, l.b))
			}
			continue
		}
		for name, qb := range l.b {
			qa, ok := l.a[name]
			switch {
			case !ok:
				ops = append(ops, jsonpatch.NewOperation("add", p+"/"+escape(string(name)), qb))
			case qa.Cmp(qb) != 0:
				ops = append(ops, jsonpatch.NewOperation("replace", p+"/"+escape(string(name)), qb))
			}
		}
	}
	return ops
}

// escape encodes a map key as a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
