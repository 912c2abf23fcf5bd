package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
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
	d := int64(3600)
	c.create(t, &v1alpha1.LaunchPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builds"},
		Spec: v1alpha1.LaunchPolicySpec{Build: &v1alpha1.BuildSpec{
			Resources:             &corev1.ResourceRequirements{Limits: maxima},
			ActiveDeadlineSeconds: &d,
		}},
	})
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
