package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/testenv"
)

// startServeAt runs `binderguard serve` against a fresh envtest API server
// (with the webhooks installed) and BinderHub simulated by fb, watching
// namespace ns; the report interval of live counters is cut to interval.
func startServeAt(t *testing.T, fb *fakebinder.Server, ns string, interval time.Duration) (*testenv.Env, *inCluster, context.Context) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	log := newLogger(testOutput(t), slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t, testenv.WithWebhooks(envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, "manifests", "webhook", "webhook.yaml")},
	}))
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	binder := httptest.NewServer(fb.Handler())
	t.Cleanup(binder.Close)
	wo := env.Webhook
	c, err := parseServe([]string{
		"--upstream", binder.URL, "--envoy-listen", freeAddr(t),
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--webhook-port", strconv.Itoa(wo.LocalServingPort), "--cert-dir", wo.LocalServingCertDir,
		"--webhook-cert-mode=external", "--namespace", ns,
	}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c.webhookHost = wo.LocalServingHost
	c.liveInterval = interval
	s, err := newInCluster(env.Config, c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := startServe(t, s)
	return env, s, ctx
}

// storm starts n launches of path at the gate at once; the returned
// channel gets each launch's last phase (ready or failed ends it, as
// BinderHub's client does) and closes when all have ended.
func storm(ctx context.Context, gateURL, path string, n int) <-chan string {
	out := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gateURL+path, nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out <- err.Error()
				return
			}
			defer resp.Body.Close()
			rd, last := sse.NewReader(resp.Body), ""
			for {
				ev, err := rd.Next()
				if err != nil {
					out <- last
					return
				}
				if !ev.IsComment() {
					last = ev.Phase
				}
				if last == sse.PhaseReady || last == "failed" {
					out <- last
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

// During a storm of held launches of one building repository, the
// LaunchPolicy that governs it shows the held count (in status and in
// kubectl's Waiting column) and the spec with its stage (Building), a
// policy that governs nothing held shows 0, and both drop to 0 once the
// build is over.
func TestServeReportsHeldLaunchesInLaunchPolicyStatus(t *testing.T) {
	const ns = "binderhub"
	const launches = 30
	fb, err := fakebinder.New(fakebinder.Config{BuildTime: 15 * time.Second, LaunchTime: 10 * time.Millisecond, KeepaliveInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fb.Close)
	env, s, ctx := startServeAt(t, fb, ns, 300*time.Millisecond)

	hot := &v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hot"},
		Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/hot/repo"}}}}
	quiet := &v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quiet"},
		Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/quiet/repo"}}}}
	for _, lp := range []*v1alpha1.LaunchPolicy{hot, quiet} {
		if err := env.Client.Create(ctx, lp); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "the policies reach the gate", func() error {
		if n := len(s.store.Load().Status()); n != 2 {
			return fmt.Errorf("%d objects in the snapshot", n)
		}
		return nil
	})
	waiting := func() map[string]string {
		got := map[string]string{}
		for name, cells := range testenv.Cells(env.Table(t, ns, "launchpolicies")) {
			got[name] = cells["Waiting"]
		}
		return got
	}

	t.Logf("storm starts at %s", time.Now().Format(time.StampMilli))
	// The build (15 s) outlasts the wait for the report (10 s), so the
	// launches are still held when it is checked.
	phases := storm(ctx, "http://"+s.gateLis.Addr().String(), "/build/gh/hot/repo/HEAD", launches)
	// One leader builds; the other launches are held.
	testenv.Eventually(t, 10*time.Second, "kubectl get launchpolicies shows the held launches", func() error {
		got := waiting()
		if got["hot"] != strconv.Itoa(launches-1) || got["quiet"] != "0" {
			return fmt.Errorf("Waiting column %v, want hot %d and quiet 0", got, launches-1)
		}
		return nil
	})
	t.Logf("held launches shown at %s", time.Now().Format(time.StampMilli))
	var lp v1alpha1.LaunchPolicy
	// The count may be written while the leader still waits for
	// BinderHub's first answer (Starting); the next report says Building.
	testenv.Eventually(t, 5*time.Second, "the status shows the held launches of a building spec", func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(hot), &lp); err != nil {
			return err
		}
		if st := lp.Status; st.Waiters != launches-1 || len(st.HotSpecs) != 1 || st.HotSpecs[0].Spec != "gh/hot/repo/HEAD" ||
			st.HotSpecs[0].Waiters != launches-1 || st.HotSpecs[0].Stage != v1alpha1.BuildStageBuilding || st.CountersReportedAt == nil {
			return fmt.Errorf("status during the storm: %+v", st)
		}
		return nil
	})
	if fb.Stats().BuildsStarted != 1 {
		t.Errorf("BinderHub saw %+v, want one build", fb.Stats())
	}

	// The build ends, the held launches are released and launch.
	testenv.Eventually(t, 30*time.Second, "the Waiting column drops back to 0", func() error {
		got := waiting()
		if got["hot"] != "0" || got["quiet"] != "0" {
			return fmt.Errorf("Waiting column %v, want 0 and 0", got)
		}
		return nil
	})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(hot), &lp); err != nil {
		t.Fatal(err)
	}
	if len(lp.Status.HotSpecs) != 0 || lp.Status.Waiters != 0 {
		t.Errorf("status after the build: %+v", lp.Status)
	}
	t.Logf("counters back to 0 at %s", time.Now().Format(time.StampMilli))
	ready := 0
	for p := range phases {
		if p == sse.PhaseReady {
			ready++
		}
	}
	t.Logf("launches ended at %s", time.Now().Format(time.StampMilli))
	if ready != launches {
		t.Errorf("%d of %d launches ended ready", ready, launches)
	}
}

// A RepoBan's status counts the launches of it the gate refused and the
// pods of it the webhook refused, added up by the replica that saw them.
func TestServeCountsWhatARepoBanStopped(t *testing.T) {
	const ns = "binderhub" // webhook.yaml as it stands admits pods of this namespace
	fb, err := fakebinder.New(fakebinder.Config{BuildTime: 100 * time.Millisecond, LaunchTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fb.Close)
	env, s, ctx := startServeAt(t, fb, ns, 300*time.Millisecond)
	ban := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "miner"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}, Mode: v1alpha1.ModeEnforce}}
	if err := env.Client.Create(ctx, ban); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the ban reaches the policy snapshot", func() error {
		if n := len(s.store.Load().Status()); n != 1 {
			return fmt.Errorf("%d objects in the snapshot", n)
		}
		return nil
	})
	gateURL := "http://" + s.gateLis.Addr().String()
	for _, path := range []string{"/build/gh/bad/miner/HEAD", "/build/gh/Bad/Miner.git/main", "/build/git/https%3A%2F%2Fgithub.com%2Fbad%2Fminer/HEAD"} {
		for p := range storm(ctx, gateURL, path, 1) {
			if p != "failed" {
				t.Errorf("launch %s ended %q, want failed", path, p)
			}
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build-miner", Labels: map[string]string{"component": "binderhub-build"},
			Annotations: map[string]string{"binder-repo": "https://github.com/bad/miner"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024.07.0"}}},
	}
	if err := env.Client.Create(ctx, pod); err == nil {
		t.Fatal("a build pod of the banned repository was admitted")
	}
	testenv.Eventually(t, 10*time.Second, "the ban's status counts 3 blocked launches and 1 refused pod", func() error {
		var got v1alpha1.RepoBan
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ban), &got); err != nil {
			return err
		}
		if st := got.Status; st.BlockedLaunches != 3 || st.RefusedPods != 1 || st.CountersReportedAt == nil {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if st := fb.Stats(); st.BuildsStarted != 0 {
		t.Errorf("a banned launch reached BinderHub: %+v", st)
	}
}
