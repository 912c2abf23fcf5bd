package cluster

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/readme"
)

// helmBlocks are the shell blocks of the README's "### With Helm" section.
type helmBlocks struct{ install, handover, uninstall string }

// The README's Helm install, run literally beside the stand-in BinderHub
// (itself the Helm release binderhub, test/cluster/binderhub, standing in
// for jupyterhub/binderhub): install, hand the host over from BinderHub's
// Ingress to the chart's, use it, upgrade both releases, uninstall.
func TestInstallWithHelmAsTheREADMESays(t *testing.T) {
	c := requireCluster(t)
	blocks := readHelmBlocks(t, c)
	cs := clientset(t, c)
	work := workDir(t, c)

	start := time.Now()
	c.sh(t, work, blocks.install)
	waitReadyReplicas(t, cs, 2, 3*time.Minute)
	t.Logf("README helm install to both replicas Ready: %v", time.Since(start).Round(time.Second))
	// BinderHub's own Ingress keeps the host until it is switched off.
	waitDirect(t, c, 30*time.Second)

	handover := time.Now()
	c.sh(t, work, blocks.handover)
	waitThroughBinderguard(t, c, 30*time.Second)
	t.Logf("handover (BinderHub ingress.enabled=false) to launches through binderguard: %v", time.Since(handover).Round(100*time.Millisecond))
	if _, err := cs.NetworkingV1().Ingresses(ns).Get(t.Context(), "binderhub", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("BinderHub's Ingress after the handover: %v, want it gone", err)
	}

	t.Run("a storm of one building repository is one build watcher across both replicas", func(t *testing.T) {
		stormIsOneBuildAcrossReplicas(t, c, cs, "gh/helm-storm/repo/HEAD")
	})

	banEnforced := func(t *testing.T) {
		t.Helper()
		for i := range 10 {
			if p := firstEvent(t, c.BinderURL+"/build/gh/evil/miner/HEAD"); p.Phase != sse.PhaseFailed || !strings.Contains(p.Message, "banned on this site") {
				t.Fatalf("launch %d of the banned repository: %+v, want the ban's message", i, p)
			}
		}
		_, err := cs.CoreV1().Pods(ns).Create(t.Context(), buildPod("build-evil", "https://github.com/evil/miner"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "banned on this site") {
			t.Errorf("creating a build pod of the banned repository: %v, want the webhook's refusal", err)
		}
	}
	t.Run("the RepoBan from the chart's values is enforced at the edge and by the webhook", banEnforced)

	t.Run("a helm upgrade of either release reverts neither", func(t *testing.T) {
		c.helm(t, "upgrade", "binderhub", filepath.Join(c.Root, "test", "cluster", "binderhub"), "--namespace", ns, "--reuse-values", "--wait")
		c.helm(t, "upgrade", "binderguard", filepath.Join(c.Root, "manifests", "chart"), "--namespace", ns, "--reuse-values", "--wait", "--timeout", "5m")
		waitReadyReplicas(t, cs, 2, 3*time.Minute)
		waitThroughBinderguard(t, c, 30*time.Second)
		if _, err := cs.NetworkingV1().Ingresses(ns).Get(t.Context(), "binderhub", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("BinderHub's Ingress after upgrading both: %v, want it still gone", err)
		}
		banEnforced(t)
		// The webhook still answers (its CA, injected at run time, survived
		// the upgrade): an allowed build pod is admitted with limits.
		pod, err := cs.CoreV1().Pods(ns).Create(t.Context(), buildPod("build-after-upgrade", "https://github.com/org/fine"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating an allowed build pod after the upgrade: %v", err)
		}
		_ = cs.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{})
	})

	t.Run("binderguard needs no permission beyond what the chart grants", func(t *testing.T) {
		checkNoPermissionErrors(t, c, cs)
	})

	c.sh(t, work, blocks.uninstall)
	t.Run("uninstalling leaves no binderguard object and launches reach BinderHub directly", func(t *testing.T) {
		checkUninstalled(t, c)
		if _, err := cs.NetworkingV1().Ingresses(ns).Get(t.Context(), "binderhub", metav1.GetOptions{}); err != nil {
			t.Errorf("BinderHub's Ingress after uninstalling: %v, want it back", err)
		}
	})
}

// readHelmBlocks finds the install, handover and uninstall ```sh blocks of
// the README's "### With Helm" section, with the BinderHub chart replaced
// by the stand-in's.
func readHelmBlocks(t *testing.T, c *Cluster) helmBlocks {
	t.Helper()
	sec, err := readme.Section(filepath.Join(c.Root, "README.md"), "### With Helm")
	if err != nil {
		t.Fatal(err)
	}
	standIn := filepath.Join(c.Root, "test", "cluster", "binderhub")
	var out helmBlocks
	for _, block := range readme.ShBlocks(sec) {
		block = strings.ReplaceAll(block, "jupyterhub/binderhub", standIn)
		switch {
		case strings.Contains(block, "helm upgrade --install binderguard"):
			out.install = block
		case strings.Contains(block, "helm uninstall binderguard"):
			out.uninstall = block
		case strings.Contains(block, "--set ingress.enabled=false"):
			out.handover = block
		}
	}
	if out.install == "" || out.handover == "" || out.uninstall == "" {
		t.Fatalf("README Helm section: found install %t, handover %t, uninstall %t sh blocks; want all three",
			out.install != "", out.handover != "", out.uninstall != "")
	}
	return out
}

// helm runs the helm of .tools against the cluster.
func (c *Cluster) helm(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, ".tools", "bin", "helm"), args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
