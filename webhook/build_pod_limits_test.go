package webhook_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/webhook/evaluate"
)

// A build pod's sidecar (an init container with restartPolicy Always) can
// be resized in place like a regular container (Kubernetes 1.33+), and the
// validating webhook is called for the resize. The create path clamps and
// checks init containers, but ValidateResizeErrors only looks at
// spec.containers, so a resize takes the sidecar past the LaunchPolicy's
// maxima unopposed.
func TestResizeOfABuildPodSidecarAboveTheMaximumIsDenied(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := c.ns
	pods := c.kube.CoreV1().Pods(ns)
	c.create(t, buildsPolicy(ns, nil))
	c.sync(t)

	always := corev1.ContainerRestartPolicyAlways
	p := buildPod("build-sidecar", "https://github.com/good/repo")
	p.Spec.InitContainers = []corev1.Container{{Name: "sidecar", Image: "busybox", RestartPolicy: &always}}
	created, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := created.Spec.InitContainers[0].Resources.Limits.Cpu(); l.Cmp(resource.MustParse("1")) != 0 {
		t.Fatalf("sidecar cpu limit on create = %v, want clamped to the maximum 1", l)
	}

	// The same resize on the main container is denied (the acceptance test
	// shows it); on the sidecar it must be too.
	created.Spec.InitContainers[0].Resources.Limits["cpu"] = resource.MustParse("16")
	created.Spec.InitContainers[0].Resources.Requests["cpu"] = resource.MustParse("16")
	got, err := pods.UpdateResize(ctx, created.Name, created, metav1.UpdateOptions{})
	if err == nil {
		t.Fatalf("resize of the sidecar to cpu 16 was admitted (limit now %v); want the maximum's denial",
			got.Spec.InitContainers[0].Resources.Limits.Cpu())
	}
	if !strings.Contains(err.Error(), "exceeds the maximum 1") {
		t.Fatalf("resize returned %v, want the maximum's denial", err)
	}
}

// `binderguard policy test -f pod.yaml` promises "the same verdict and
// patch" as the webhooks (README, Admission webhooks). It runs
// evaluate.Evaluate on the manifest as written (cmd/binderguard
// policy_pod.go), but the API server defaults a container's missing
// requests to its limits before any webhook sees the pod. For a build pod
// that sets only limits, the offline tool then reports requests set to the
// policy's defaults (cpu 250m) where the cluster clamps the defaulted
// requests to the maxima (cpu 1): a fourfold difference in what the
// scheduler reserves, and a different patch.
func TestPolicyTestOfflineMatchesTheClusterForLimitsOnlyBuildPods(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := c.ns
	c.create(t, buildsPolicy(ns, defaultRequests))
	c.sync(t)
	manifest := func() *corev1.Pod {
		p := buildPod("build-limits-only", "https://github.com/good/big")
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("8"), "memory": resource.MustParse("64G")}
		return p
	}

	inCluster, err := c.kube.CoreV1().Pods(ns).Create(ctx, manifest(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// What `policy test -f` does with the same manifest.
	pod := manifest()
	evaluate.DefaultRequests(pod)
	v := evaluate.Evaluate(pod, evaluate.FromSnapshot(c.store.Load(), nil, time.Now()))
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := json.Marshal(v.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("applying the offline patch %s: %v", ops, err)
	}
	var offline corev1.Pod
	if err := json.Unmarshal(patched, &offline); err != nil {
		t.Fatal(err)
	}
	for _, name := range []corev1.ResourceName{"cpu", "memory"} {
		want := inCluster.Spec.Containers[0].Resources.Requests[name]
		got := offline.Spec.Containers[0].Resources.Requests[name]
		if got.Cmp(want) != 0 {
			t.Errorf("requests.%s: policy test -f gives %s, the cluster %s", name, got.String(), want.String())
		}
	}
}
