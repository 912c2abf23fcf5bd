package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/launchstorm"
	"github.com/binderguard/binderguard/test/readme"
)

// ns is where the stand-in BinderHub runs and where the README installs
// binderguard.
const ns = "binderhub"

// The README's "Install beside BinderHub" section, run literally in a real
// cluster: install, switch the Ingress, use it as an operator would, and
// uninstall.
func TestInstallBesideBinderHubAsTheREADMESays(t *testing.T) {
	c := requireCluster(t)
	blocks := installBlocks(t, filepath.Join(c.Root, "README.md"))
	cs := clientset(t, c)
	work := workDir(t, c)

	start := time.Now()
	c.sh(t, work, blocks.install)
	waitReadyReplicas(t, cs, 2, 3*time.Minute)
	t.Logf("README install to both replicas Ready: %v", time.Since(start).Round(time.Second))
	c.sh(t, work, blocks.switchIngress)
	waitThroughBinderguard(t, c, 30*time.Second)

	t.Run("a storm of one building repository is one build watcher across both replicas", func(t *testing.T) {
		stormIsOneBuildAcrossReplicas(t, c, cs, "gh/storm/repo/HEAD")
	})

	t.Run("a RepoBan applied with kubectl is enforced within a second", func(t *testing.T) {
		if p := firstEvent(t, c.BinderURL+"/build/gh/evil/miner/HEAD"); p.Phase == sse.PhaseFailed {
			t.Fatalf("before the ban: %+v, want a launch that starts", p)
		}
		c.kubectlApply(t, `apiVersion: binderguard.io/v1alpha1
kind: RepoBan
metadata: {name: banned, namespace: binderhub}
spec:
  repos: [gh/evil/miner]
  message: gh/evil/miner is banned on this site
  mode: Enforce
`)
		applied := time.Now()
		for {
			p := firstEvent(t, c.BinderURL+"/build/gh/evil/miner/HEAD")
			if p.Phase == sse.PhaseFailed && strings.Contains(p.Message, "banned on this site") {
				break
			}
			if time.Since(applied) > 5*time.Second {
				t.Fatalf("ban not enforced 5 s after kubectl apply; last answer %+v", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(applied)
		t.Logf("ban enforced at BINDER_URL %v after kubectl apply", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("ban enforced after %v, want within 1 s", took)
		}
		// Every replica enforces it, whichever a connection reaches.
		for i := range 20 {
			if p := firstEvent(t, c.BinderURL+"/build/gh/Evil/Miner.git/main"); p.Phase != sse.PhaseFailed {
				t.Fatalf("probe %d: %+v, want the ban", i, p)
			}
		}
		_, err := cs.CoreV1().Pods(ns).Create(t.Context(), buildPod("build-evil", "https://github.com/evil/miner"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "banned on this site") {
			t.Errorf("creating a build pod of the banned repository: %v, want the webhook's refusal", err)
		}
	})

	t.Run("onExisting Delete deletes a build pod the kubelet runs", func(t *testing.T) {
		pod, err := cs.CoreV1().Pods(ns).Create(t.Context(), buildPod("build-running", "https://github.com/org/running"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitPod(t, cs, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		c.kubectlApply(t, `apiVersion: binderguard.io/v1alpha1
kind: RepoBan
metadata: {name: running, namespace: binderhub}
spec:
  repos: [gh/org/running]
  mode: Enforce
  onExisting: Delete
`)
		waitGone(t, cs, pod.Name, time.Minute)
	})

	t.Run("a build pod without limits runs with the LaunchPolicy's", func(t *testing.T) {
		c.kubectlApply(t, `apiVersion: binderguard.io/v1alpha1
kind: LaunchPolicy
metadata: {name: default, namespace: binderhub}
spec:
  build:
    resources:
      requests: {cpu: 100m, memory: 64M}
      limits: {cpu: 500m, memory: 128M}
    activeDeadlineSeconds: 600
`)
		c.kubectl(t, "-n", ns, "wait", "--for=condition=Accepted", "launchpolicy/default", "--timeout=60s")
		time.Sleep(time.Second) // the other replica's informer
		pod, err := cs.CoreV1().Pods(ns).Create(t.Context(), buildPod("build-limited", "https://github.com/org/limited"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitPod(t, cs, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		got, err := cs.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lim := got.Spec.Containers[0].Resources.Limits
		if !lim.Cpu().Equal(resource.MustParse("500m")) || !lim.Memory().Equal(resource.MustParse("128M")) ||
			got.Spec.ActiveDeadlineSeconds == nil || *got.Spec.ActiveDeadlineSeconds != 600 {
			t.Errorf("running build pod: limits %v, activeDeadlineSeconds %v; want cpu 500m, memory 128M, 600", lim, got.Spec.ActiveDeadlineSeconds)
		}
		_ = cs.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{})
	})

	// Before the pods are replaced below: their logs go with them.
	checkNoPermissionErrors(t, c, cs)

	t.Run("deleting a binderguard pod during a storm fails no launch without a retry", func(t *testing.T) {
		resetSim(t, c)
		storm := make(chan launchstorm.Summary, 1)
		go func() {
			sum, err := launchstorm.Run(t.Context(), launchstorm.Config{URL: c.BinderURL, Spec: "gh/storm/deleted/HEAD", Clients: 100, Timeout: 3 * time.Minute})
			if err != nil {
				t.Error(err)
			}
			storm <- sum
		}()
		time.Sleep(5 * time.Second) // held by now: the build takes 20 s
		var victim string
		for name := range binderguardPods(t, cs) {
			victim = name
		}
		if err := cs.CoreV1().Pods(ns).Delete(t.Context(), victim, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		sum := <-storm
		t.Logf("storm with %s deleted: %d ready, %d told to retry (%v), %d errors %v", victim, sum.Ready, sum.Failed, sum.FailureMessages, sum.Errors, sum.ErrorMessages)
		checkToldToRetry(t, sum)
		waitReadyReplicas(t, cs, 2, 3*time.Minute)
	})

	t.Run("a rollout restart under a steady launch load fails no launch without a retry", func(t *testing.T) {
		resetSim(t, c)
		rolled := make(chan struct{})
		go func() {
			defer close(rolled)
			c.kubectl(t, "-n", ns, "rollout", "restart", "deploy/binderguard")
			c.kubectl(t, "-n", ns, "rollout", "status", "deploy/binderguard", "--timeout=5m")
		}()
		// Two launches a second until the rollout is done: mostly one
		// repository (built after its first launch), every fourth a new one
		// (its own build).
		var (
			mu    sync.Mutex
			total launchstorm.Summary
			wg    sync.WaitGroup
		)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-rolled:
			case <-tick.C:
				spec := "gh/steady/repo/HEAD"
				if i%4 == 3 {
					spec = fmt.Sprintf("gh/steady/r%d/HEAD", i)
				}
				wg.Go(func() {
					sum, err := launchstorm.Run(t.Context(), launchstorm.Config{URL: c.BinderURL, Spec: spec, Clients: 1, Timeout: 3 * time.Minute})
					if err != nil {
						t.Error(err)
						return
					}
					checkToldToRetry(t, sum)
					mu.Lock()
					defer mu.Unlock()
					total.Clients += sum.Clients
					total.Ready += sum.Ready
					total.Failed += sum.Failed
					total.Errors += sum.Errors
				})
				continue
			}
			break
		}
		wg.Wait()
		t.Logf("rollout under load: %d launches, %d ready, %d told to retry, %d errors", total.Clients, total.Ready, total.Failed, total.Errors)
		waitReadyReplicas(t, cs, 2, 3*time.Minute)
	})

	t.Run("binderguard needs no permission beyond what the manifests grant", func(t *testing.T) {
		checkNoPermissionErrors(t, c, cs)
	})

	c.sh(t, work, blocks.uninstall)
	t.Run("uninstalling leaves no binderguard object and launches reach BinderHub directly", func(t *testing.T) {
		checkUninstalled(t, c)
	})
}

// stormIsOneBuildAcrossReplicas sends a storm of 300 launches of one
// building repository (spec) to BINDER_URL and checks that all are ready
// with their own tokens, that BinderHub saw at most one build watcher, and
// that every binderguard replica's Envoy carried some of them.
func stormIsOneBuildAcrossReplicas(t *testing.T, c *Cluster, cs kubernetes.Interface, spec string) {
	t.Helper()
	before := envoyLaunches(t, cs)
	resetSim(t, c)
	sum, err := launchstorm.Run(t.Context(), launchstorm.Config{
		URL: c.BinderURL, Spec: spec, Clients: 300, Timeout: 3 * time.Minute,
		StatsURL: c.BinderURL + "/_sim/stats",
	})
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Peak int `json:"peak_build_watchers"`
	}
	if err := json.Unmarshal(sum.SimStats, &st); err != nil {
		t.Fatalf("reading /_sim/stats: %v", err)
	}
	t.Logf("storm: %d/%d ready, %d distinct tokens, peak build watchers %d, p99 %.1f s", sum.Ready, sum.Clients, sum.DistinctTokens, st.Peak, sum.P99ReadyS)
	if sum.Ready != 300 || sum.DistinctTokens != 300 || st.Peak > 1 {
		t.Errorf("storm: %d ready, %d distinct tokens, peak build watchers %d; want 300, 300, <= 1 (failures %v, errors %v)",
			sum.Ready, sum.DistinctTokens, st.Peak, sum.FailureMessages, sum.ErrorMessages)
	}
	after := envoyLaunches(t, cs)
	for pod, n := range after {
		if n-before[pod] == 0 {
			t.Errorf("no launch of the storm went through %s's Envoy (before %v, after %v)", pod, before, after)
		}
	}
}

// checkUninstalled checks that no object named binderguard is left in the
// cluster and that launches reach BinderHub directly again.
func checkUninstalled(t *testing.T, c *Cluster) {
	t.Helper()
	out := c.kubectl(t, "-n", ns, "get", "all,serviceaccounts,roles,rolebindings,secrets,configmaps,leases,poddisruptionbudgets,networkpolicies", "-o", "name") +
		c.kubectl(t, "get", "clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations,customresourcedefinitions", "-o", "name")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "binderguard") {
			t.Errorf("left after uninstall: %s", l)
		}
	}
	waitDirect(t, c, 30*time.Second)
}

// readmeBlocks are the shell blocks of the README's install section.
type readmeBlocks struct{ install, switchIngress, uninstall string }

// installBlocks finds, in README.md's "Install beside BinderHub" section,
// the ```sh blocks that install, switch the Ingress, and uninstall.
func installBlocks(t *testing.T, path string) readmeBlocks {
	t.Helper()
	sec, err := readme.Section(path, "## Install beside BinderHub")
	if err != nil {
		t.Fatal(err)
	}
	var out readmeBlocks
	for _, block := range readme.ShBlocks(sec) {
		switch {
		case strings.Contains(block, "apply -k manifests/deploy"):
			out.install = block
		case strings.Contains(block, "patch ingress binderhub") && strings.Contains(block, `"value":"binderguard"`):
			out.switchIngress = block
		case strings.Contains(block, "delete -k manifests/deploy"):
			out.uninstall = block
		}
	}
	if out.install == "" || out.switchIngress == "" || out.uninstall == "" {
		t.Fatalf("README install section: found install %t, Ingress switch %t, uninstall %t sh blocks; want all three",
			out.install != "", out.switchIngress != "", out.uninstall != "")
	}
	return out
}

// workDir is where the README's commands run: the repository's manifests
// and the stand-in BinderHub's helm values (values.yaml), as an operator
// would have them side by side.
func workDir(t *testing.T, c *Cluster) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Symlink(filepath.Join(c.Root, "manifests"), filepath.Join(d, "manifests")); err != nil {
		t.Fatal(err)
	}
	values := "config:\n  GitHubRepoProvider:\n    banned_specs:\n      - ^imported-ban/.*\n"
	if err := os.WriteFile(filepath.Join(d, "values.yaml"), []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func (c *Cluster) env() []string {
	// helm keeps its cache and configuration with the cluster's state
	// (removed by cluster-down), not in $HOME.
	helm := filepath.Join(filepath.Dir(c.Kubeconfig), "helm")
	return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig,
		"HELM_CACHE_HOME="+helm+"/cache", "HELM_CONFIG_HOME="+helm+"/config", "HELM_DATA_HOME="+helm+"/data",
		"PATH="+filepath.Join(c.Root, ".tools", "bin")+":"+filepath.Join(c.Root, "bin")+":"+os.Getenv("PATH"))
}

// sh runs a README block with bash -euo pipefail in dir.
func (c *Cluster) sh(t *testing.T, dir, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, c.env()
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s\n%s", strings.TrimSpace(script), out)
	if err != nil {
		t.Fatalf("README block failed: %v", err)
	}
}

func (c *Cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(c.Root, ".tools", "bin", "kubectl"), args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *Cluster) kubectlApply(t *testing.T, manifest string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(c.Root, ".tools", "bin", "kubectl"), "apply", "-f", "-")
	cmd.Env, cmd.Stdin = c.env(), strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func waitReadyReplicas(t *testing.T, cs kubernetes.Interface, n int32, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "binderguard", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == n && d.Status.UpdatedReplicas == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("binderguard not %d/%d ready after %v: %+v (%v)", n, n, timeout, d.Status, err)
		}
		time.Sleep(time.Second)
	}
}

// binderguardPods are the Running binderguard pods by name, with their IPs.
func binderguardPods(t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=binderguard"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out[p.Name] = p.Status.PodIP
		}
	}
	return out
}

// envoyLaunches sums each binderguard pod's envoy_binderguard_launches,
// read from its Envoy's stats listener (port 9902) at the pod IP.
func envoyLaunches(t *testing.T, cs kubernetes.Interface) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, ip := range binderguardPods(t, cs) {
		resp, err := noProxy.Get("http://" + ip + ":9902/stats/prometheus")
		if err != nil {
			t.Fatalf("reading %s's Envoy stats: %v", name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "envoy_binderguard_launches{") {
				v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
				out[name] += v
			}
		}
		resp.Body.Close()
	}
	return out
}

func resetSim(t *testing.T, c *Cluster) {
	t.Helper()
	resp, err := noProxy.Post(c.BinderURL+"/_sim/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /_sim/reset: %s", resp.Status)
	}
}

// firstEvent opens a launch and returns its first event, then closes it.
func firstEvent(t *testing.T, u string) sse.Payload {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return sse.Payload{Message: err.Error()}
	}
	defer resp.Body.Close()
	rd := sse.NewReader(resp.Body)
	for {
		e, err := rd.Next()
		if err != nil {
			return sse.Payload{Message: err.Error()}
		}
		if e.IsComment() {
			continue
		}
		p, err := e.Decode()
		if err != nil {
			return sse.Payload{Message: err.Error()}
		}
		return p
	}
}

// waitThroughBinderguard waits until launches at BINDER_URL carry the
// gate's or Envoy's class header: the Ingress now sends them through
// binderguard.
func waitThroughBinderguard(t *testing.T, c *Cluster, timeout time.Duration) {
	t.Helper()
	waitClass(t, c, timeout, true)
}

func waitDirect(t *testing.T, c *Cluster, timeout time.Duration) {
	t.Helper()
	waitClass(t, c, timeout, false)
}

func waitClass(t *testing.T, c *Cluster, timeout time.Duration, through bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.BinderURL+"/build/gh/probe/repo/HEAD", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := noProxy.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1))
			resp.Body.Close()
			if (resp.Header.Get("X-Binderguard-Class") != "") == through {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("launches at %s did not go %s binderguard within %v (last: %v)", c.BinderURL, map[bool]string{true: "through", false: "around"}[through], timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// buildPod is a build pod as BinderHub creates it (labels, annotation,
// container name, restart policy), without resources, running the test
// cluster's pause image instead of repo2docker.
func buildPod(name, repoURL string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"component": "binderhub-build", "name": name},
			Annotations: map[string]string{"binder-repo": repoURL},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "builder", Image: "docker.io/local/pause:v1", ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

func waitPod(t *testing.T, cs kubernetes.Interface, name, what string, ok func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not %s: %v %v", name, what, err, p.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func waitGone(t *testing.T, cs kubernetes.Interface, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still there after %v (%v)", name, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkToldToRetry fails the test for any launch of sum that ended other
// than ready or with a failed event that says to try again: a broken
// stream, a transport error or a bare HTTP error.
func checkToldToRetry(t *testing.T, sum launchstorm.Summary) {
	t.Helper()
	if sum.Errors != 0 || sum.Non200 != 0 || sum.Ready+sum.Failed != sum.Clients {
		t.Errorf("%d of %d launches ended without ready or a failed event (%d errors %v, %d non-200)", sum.Clients-sum.Ready-sum.Failed, sum.Clients, sum.Errors, sum.ErrorMessages, sum.Non200)
	}
	for msg, n := range sum.FailureMessages {
		if !strings.Contains(strings.ToLower(msg), "try again") {
			t.Errorf("%d launches failed with %q, which does not say to retry", n, msg)
		}
	}
}

// checkNoPermissionErrors fails the test for a permission error in the log
// of any running binderguard container.
func checkNoPermissionErrors(t *testing.T, c *Cluster, cs kubernetes.Interface) {
	t.Helper()
	denied := regexp.MustCompile(`(?i).*(forbidden|cannot (get|list|watch|create|update|patch|delete) resource).*`)
	for name := range binderguardPods(t, cs) {
		logs := c.kubectl(t, "-n", ns, "logs", name, "-c", "binderguard", "--tail=-1")
		if m := denied.FindString(logs); m != "" {
			t.Errorf("%s logged a permission error: %s", name, m)
		}
	}
}
