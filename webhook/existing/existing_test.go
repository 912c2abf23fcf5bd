package existing

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

func repoBan(mode string, on v1alpha1.OnExisting) *v1alpha1.RepoBan {
	return &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "crypto", Generation: 1},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}, Mode: v1alpha1.Mode(mode), OnExisting: on},
	}
}

func pod(name, component, repo string, phase corev1.PodPhase) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{"component": component}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: phase},
	}
	if component == "binderhub-build" {
		p.Annotations = map[string]string{"binder-repo": repo}
	} else {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "BINDER_REPO_URL", Value: repo}}
	}
	return p
}

func TestReconcile(t *testing.T) {
	tests := map[string]struct {
		ban       *v1alpha1.RepoBan
		pods      []*corev1.Pod
		remaining []string
		listed    int
		count     int32
		action    v1alpha1.PodAction
	}{
		"a ban that ignores existing pods leaves them and its status alone": {
			ban:       repoBan("Enforce", v1alpha1.OnExistingIgnore),
			pods:      []*corev1.Pod{pod("build-1", "binderhub-build", "https://github.com/bad/miner", corev1.PodRunning)},
			remaining: []string{"build-1"},
		},
		"a reporting ban lists build and user pods of the repository and deletes nothing": {
			ban: repoBan("Warn", v1alpha1.OnExistingReport),
			pods: []*corev1.Pod{
				pod("build-1", "binderhub-build", "https://github.com/Bad/Miner.git", corev1.PodRunning),
				pod("jupyter-1", "singleuser-server", "git@github.com:bad/miner.git", corev1.PodPending),
				pod("build-2", "binderhub-build", "https://github.com/good/repo", corev1.PodRunning),
			},
			remaining: []string{"build-1", "build-2", "jupyter-1"},
			listed:    2, count: 2, action: v1alpha1.PodActionReported,
		},
		"a deleting ban removes running pods of the repository only": {
			ban: repoBan("Enforce", v1alpha1.OnExistingDelete),
			pods: []*corev1.Pod{
				pod("build-1", "binderhub-build", "https://github.com/bad/miner", corev1.PodRunning),
				pod("build-done", "binderhub-build", "https://github.com/bad/miner", corev1.PodSucceeded),
				pod("hub", "hub", "https://github.com/bad/miner", corev1.PodRunning),
				pod("build-2", "binderhub-build", "https://github.com/good/repo", corev1.PodRunning),
			},
			remaining: []string{"build-2", "build-done", "hub"},
			listed:    1, count: 1, action: v1alpha1.PodActionDeleted,
		},
		"a ban in force without an entry it cannot use still deletes": {
			ban: func() *v1alpha1.RepoBan {
				rb := repoBan("Enforce", v1alpha1.OnExistingDelete)
				rb.Spec.Repos = append(rb.Spec.Repos, "zenodo/notadoi")
				return rb
			}(),
			pods:      []*corev1.Pod{pod("build-1", "binderhub-build", "https://github.com/bad/miner", corev1.PodRunning)},
			remaining: []string{},
			listed:    1, count: 1, action: v1alpha1.PodActionDeleted,
		},
		"the status names at most 64 pods and counts them all": {
			ban: repoBan("Enforce", v1alpha1.OnExistingReport),
			pods: func() []*corev1.Pod {
				var ps []*corev1.Pod
				for i := range 70 {
					ps = append(ps, pod(fmt.Sprintf("jupyter-%02d", i), "singleuser-server", "https://github.com/bad/miner", corev1.PodRunning))
				}
				return ps
			}(),
			listed: 64, count: 70, action: v1alpha1.PodActionReported,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := runtime.NewScheme()
			if err := clientgoscheme.AddToScheme(s); err != nil {
				t.Fatal(err)
			}
			if err := v1alpha1.AddToScheme(s); err != nil {
				t.Fatal(err)
			}
			objs := []client.Object{tc.ban}
			for _, p := range tc.pods {
				objs = append(objs, p)
			}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&v1alpha1.RepoBan{}).Build()
			r := &Reconciler{Client: c, Pods: c}
			ctx := context.Background()
			if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "binder", Name: "crypto"}}); err != nil {
				t.Fatal(err)
			}
			var left corev1.PodList
			if err := c.List(ctx, &left); err != nil {
				t.Fatal(err)
			}
			if tc.remaining != nil {
				var names []string
				for _, p := range left.Items {
					names = append(names, p.Name)
				}
				if fmt.Sprint(names) != fmt.Sprint(tc.remaining) {
					t.Errorf("pods left %v, want %v", names, tc.remaining)
				}
			}
			var rb v1alpha1.RepoBan
			if err := c.Get(ctx, client.ObjectKeyFromObject(tc.ban), &rb); err != nil {
				t.Fatal(err)
			}
			if len(rb.Status.MatchedPods) != tc.listed || rb.Status.MatchedPodCount != tc.count {
				t.Fatalf("status lists %d pods, count %d; want %d, %d", len(rb.Status.MatchedPods), rb.Status.MatchedPodCount, tc.listed, tc.count)
			}
			for _, m := range rb.Status.MatchedPods {
				if m.Action != tc.action {
					t.Errorf("pod %s action %s, want %s", m.Name, m.Action, tc.action)
				}
			}
			if tc.listed > 0 && tc.pods[0].Labels["component"] == "binderhub-build" && rb.Status.MatchedPods[0].Role != v1alpha1.PodRoleBuild {
				t.Errorf("first listed pod %+v, want the build pod first", rb.Status.MatchedPods[0])
			}
		})
	}
}
