package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// podCIDR and dnsServer are the addresses up.sh gives the cluster (env.sh).
var (
	_, podCIDR, _ = net.ParseCIDR("198.18.0.0/24")
	dnsServer     = "198.19.0.10:53"
)

func clientset(t *testing.T, c *Cluster) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("loading kubeconfig %s: %v", c.Kubeconfig, err)
	}
	cfg.Proxy = nil
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building the client: %v", err)
	}
	return cs
}

// noProxy is an HTTP client that never uses an environment proxy.
var noProxy = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

func TestClusterUp(t *testing.T) {
	c := requireCluster(t)
	cs := clientset(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("the node is Ready", func(t *testing.T) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing nodes: %v", err)
		}
		if len(nodes.Items) != 1 {
			t.Fatalf("got %d nodes, want 1", len(nodes.Items))
		}
		for _, cond := range nodes.Items[0].Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				t.Fatalf("node %s Ready=%s: %s", nodes.Items[0].Name, cond.Status, cond.Message)
			}
		}
	})

	binder := binderPod(ctx, t, cs)

	t.Run("the binder pod has an IP from the pod range", func(t *testing.T) {
		ip := net.ParseIP(binder.Status.PodIP)
		if ip == nil || !podCIDR.Contains(ip) {
			t.Fatalf("binder pod IP %q is not in %s", binder.Status.PodIP, podCIDR)
		}
	})

	t.Run("CoreDNS answers for binder.binderhub.svc through the kube-dns ClusterIP", func(t *testing.T) {
		svc, err := cs.CoreV1().Services("binderhub").Get(ctx, "binder", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading service binderhub/binder: %v", err)
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dnsServer)
		}}
		// kube-proxy programs a Service about a second after its endpoints
		// change, so allow a few seconds before calling DNS broken.
		var addrs []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if addrs, err = r.LookupHost(ctx, "binder.binderhub.svc.cluster.local"); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("resolving binder.binderhub.svc.cluster.local at %s: %v", dnsServer, err)
		}
		if len(addrs) != 1 || addrs[0] != svc.Spec.ClusterIP {
			t.Fatalf("binder.binderhub.svc.cluster.local = %v, want [%s]", addrs, svc.Spec.ClusterIP)
		}
	})

	t.Run("BINDER_URL reaches fakebinder through the Ingress's backend", func(t *testing.T) {
		body := get(t, c.BinderURL+"/versions", http.StatusOK)
		if !strings.Contains(body, "binderhub") {
			t.Fatalf("GET /versions = %q, want BinderHub's versions document", body)
		}
		get(t, c.BinderURL+"/_sim/stats", http.StatusOK)
	})

	t.Run("pod logs come back through the kubelet", func(t *testing.T) {
		raw, err := cs.CoreV1().Pods("binderhub").GetLogs(binder.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("reading logs of binderhub/%s: %v", binder.Name, err)
		}
		if !strings.Contains(string(raw), "serving") {
			t.Fatalf("logs of binderhub/%s = %q, want fakebinder's serving line", binder.Name, raw)
		}
	})

	t.Run("kubectl exec runs a command in the binder container", func(t *testing.T) {
		// fakebinder's image holds little but the binary (on PATH); -h prints its usage.
		cmd := exec.CommandContext(ctx, filepath.Join(c.Root, ".tools", "bin", "kubectl"), "--kubeconfig", c.Kubeconfig,
			"--cache-dir", filepath.Join(filepath.Dir(c.Kubeconfig), "kubectl-cache"), // not ~/.kube
			"-n", "binderhub", "exec", binder.Name, "--", "fakebinder", "-h")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "usage: fakebinder") {
			t.Fatalf("kubectl exec %s -- fakebinder -h: %v\n%s", binder.Name, err, out)
		}
	})

	t.Run("a patched Ingress backend moves BINDER_URL within a second", func(t *testing.T) {
		patch := func(name string) {
			p := fmt.Sprintf(`[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service/name","value":%q}]`, name)
			if _, err := cs.NetworkingV1().Ingresses("binderhub").Patch(ctx, "binderhub", types.JSONPatchType, []byte(p), metav1.PatchOptions{}); err != nil {
				t.Fatalf("patching ingress binderhub to %s: %v", name, err)
			}
		}
		defer patch("binder")
		patch("no-such-service")
		eventually(t, time.Second, c.BinderURL+"/versions", http.StatusServiceUnavailable)
		patch("binder")
		eventually(t, time.Second, c.BinderURL+"/versions", http.StatusOK)
	})
}

func binderPod(ctx context.Context, t *testing.T, cs kubernetes.Interface) corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods("binderhub").List(ctx, metav1.ListOptions{LabelSelector: "app=binder,component=binder"})
	if err != nil {
		t.Fatalf("listing binder pods: %v", err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			return p
		}
	}
	t.Fatalf("no running binder pod among %d", len(pods.Items))
	return corev1.Pod{}
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := noProxy.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s = %d %q, want %d", url, resp.StatusCode, body, want)
	}
	return string(body)
}

// eventually polls url until it answers want, failing after within.
func eventually(t *testing.T, within time.Duration, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := noProxy.Get(url)
		if err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s still answered %d after %v, want %d", url, last, within, want)
}
