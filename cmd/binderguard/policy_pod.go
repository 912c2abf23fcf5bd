package main

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/webhook/evaluate"
)

// evaluatePod is `policy test -f`: what the API server would do with the
// pod under the admission webhooks (mutate, then validate the mutated pod).
// The decision itself is webhook/evaluate's; this only decodes the file.
func evaluatePod(snap *snapshot.Snapshot, manifest []byte, now time.Time) (any, error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(manifest, &pod); err != nil {
		return nil, usageErr("-f: not a pod manifest: %v", err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return nil, usageErr("-f: kind %q is not Pod", pod.Kind)
	}
	if pod.Kind == "" && len(pod.Spec.Containers) == 0 {
		// An empty file decodes to an empty pod, which would pass as
		// "not a binder pod".
		return nil, usageErr("-f: not a pod manifest: no kind and no containers")
	}
	evaluate.DefaultRequests(&pod)
	return evaluate.Evaluate(&pod, evaluate.FromSnapshot(snap, nil, now)), nil
}
