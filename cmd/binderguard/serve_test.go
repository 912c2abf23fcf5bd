package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/testenv"
	"github.com/binderguard/binderguard/xds/translate"
)

// TestServeAgainstAPIServer runs the whole in-cluster wiring in process
// against a real kube-apiserver and etcd, with a real Envoy programmed by
// it: policies flow from the API server to the gate, the xDS server (and
// so Envoy) and the webhook the API server calls, and the elected leader
// writes their status.
func TestServeAgainstAPIServer(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := testOutput(t)
	log := newLogger(out, slog.LevelInfo)
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	env := testenv.Start(t, testenv.WithWebhooks(envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, "manifests", "webhook", "webhook.yaml")},
	}))
	// webhook.yaml as it stands, before kustomize sets the install's
	// namespace, admits pods of namespace binderhub only.
	const ns = "binderhub"
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	fb, err := fakebinder.New(fakebinder.Config{BuildTime: 100 * time.Millisecond, LaunchTime: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	binder := httptest.NewServer(fb.Handler())
	t.Cleanup(func() { fb.Close(); binder.Close() })

	wo := env.Webhook
	envoyAddr, envoyAdmin := freeAddr(t), freeAddr(t)
	c, err := parseServe([]string{
		"--upstream", binder.URL, "--envoy-listen", envoyAddr,
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--webhook-port", strconv.Itoa(wo.LocalServingPort), "--cert-dir", wo.LocalServingCertDir,
		"--webhook-cert-mode=external", // envtest made the certificate and the caBundle
		"--namespace", ns,
	}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	c.webhookHost = wo.LocalServingHost
	s, err := newInCluster(env.Config, c, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := startServe(t, s)

	get := func(url string) (*http.Response, error) {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, err
	}
	healthURL := "http://" + s.healthLis.Addr().String()
	testenv.Eventually(t, 20*time.Second, "/readyz answers 200 (policies loaded, webhook serving)", func() error {
		resp, err := get(healthURL + "/readyz")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return nil
	})

	// A ban, created as kubectl would.
	ban := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "miner"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}, Mode: v1alpha1.ModeEnforce,
			Message: "This repository mines cryptocurrency."},
	}
	if err := env.Client.Create(ctx, ban); err != nil {
		t.Fatal(err)
	}

	// Probe only once the informer has delivered the ban: a probe before
	// that would be a real launch (led by the gate, counted below).
	banned, err := spec.Parse("gh/bad/miner/HEAD")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the ban reaches the policy snapshot", func() error {
		if _, ok := s.store.Load().Ban(banned, time.Now()); !ok {
			return errors.New("not yet")
		}
		return nil
	})

	// (1) The gate refuses launches of it, in every spelling, with one
	// failed event (403) on a 200 stream.
	gateURL := "http://" + s.gateLis.Addr().String()
	for _, path := range []string{"/build/gh/bad/miner/HEAD", "/build/gh/Bad/Miner.git/main"} {
		testenv.Eventually(t, 5*time.Second, "gate refuses "+path, func() error {
			resp, err := get(gateURL + path)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d, want 200 with a failed event", resp.StatusCode)
			}
			ev, err := sse.NewReader(resp.Body).Next()
			if err != nil {
				return fmt.Errorf("reading the first event: %w", err)
			}
			p, err := ev.Decode()
			if err != nil {
				return err
			}
			if p.Phase != "failed" || p.StatusCode != http.StatusForbidden || !strings.Contains(p.Message, "mines cryptocurrency") {
				return fmt.Errorf("first event %s, want failed 403 with the ban's message", ev.Data)
			}
			return nil
		})
	}
	if st := fb.Stats(); st.BuildsStarted != 0 || st.Launches != 0 {
		t.Errorf("a refused launch reached BinderHub: %+v", st)
	}

	// (2) The leader marks it Accepted for its generation.
	testenv.Eventually(t, 10*time.Second, "RepoBan Accepted=True", func() error {
		var got v1alpha1.RepoBan
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ban), &got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionTrue || got.Status.ObservedGeneration != got.Generation || cond.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v at generation %d", got.Status, got.Generation)
		}
		return nil
	})

	// (3) An object the CRD admits but binderguard cannot use is marked
	// Accepted=False with the reason; the valid ban stays in force.
	broken := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"git/notaurl"}},
	}
	if err := env.Client.Create(ctx, broken); err != nil {
		t.Fatalf("the CRD now refuses %v itself; pick an object only binderguard's parser refuses: %v", broken.Spec.Repos, err)
	}
	testenv.Eventually(t, 10*time.Second, "invalid RepoBan Accepted=False", func() error {
		var got v1alpha1.RepoBan
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(broken), &got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonInvalid ||
			!strings.Contains(cond.Message, "spec.repos[0]") || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})

	// (4) The xDS server gives an ADS client a ban slot that answers the
	// ban at the edge.
	assertEdgeBan(t, ctx, s.xdsLis.Addr().String(), "/build/gh/bad/miner/")

	// A real Envoy bootstrapped like the sidecar takes its whole config from
	// serve's xDS server: the ban is answered at the edge, other launches go
	// through the gate to BinderHub, everything else straight to BinderHub.
	envoyDone := startEnvoy(t, ctx, out, s.xdsLis.Addr().String(), envoyAdmin, "")
	edge := "http://" + envoyAddr
	testenv.Eventually(t, 15*time.Second, "Envoy answers the ban itself", func() error {
		resp, err := get(edge + "/build/gh/bad/miner/HEAD")
		if err != nil {
			return err
		}
		if cls := resp.Header.Get(translate.HeaderClass); resp.StatusCode != http.StatusOK || cls != "banned" {
			return fmt.Errorf("status %d class %q, want 200 from the edge's banned rule", resp.StatusCode, cls)
		}
		return nil
	})
	resp, err := get(edge + "/versions")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /versions through Envoy: %v %v", resp, err)
	}
	if phase := launch(t, ctx, edge+"/build/gh/good/repo/HEAD"); phase != sse.PhaseReady {
		t.Errorf("a launch through Envoy and the gate ended with %q, want ready", phase)
	}
	if st := fb.Stats(); st.BuildsStarted != 1 || st.Launches != 1 {
		t.Errorf("BinderHub saw %+v, want the one allowed build and launch", st)
	}
	if n := counter(t, s.reg, "binderguard_launches_total", "outcome", "lead"); n != 1 {
		t.Errorf("the gate led %v launches, want 1: Envoy must send launches through the gate, not the fallback", n)
	}

	// The webhook, registered on the manager, is what the API server calls:
	// a build pod of the banned repository is refused.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build-miner", Labels: map[string]string{"component": "binderhub-build"},
			Annotations: map[string]string{"binder-repo": "https://github.com/bad/miner"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024.07.0"}}},
	}
	err = env.Client.Create(ctx, pod)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "mines cryptocurrency") {
		t.Errorf("creating a build pod of a banned repository: err = %v, want a denial with the ban's message", err)
	}

	// Metrics: one scrape of binderguard's registry and controller-runtime's
	// holds both without collisions.
	if _, err := (prometheus.Gatherers{s.reg, crmetrics.Registry}).Gather(); err != nil {
		t.Errorf("gathering metrics: %v", err)
	}
	resp, err = get("http://" + s.metricsLis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"binderguard_", "leader_election_master_status", "go_goroutines"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM (the context ending) stops everything.
	stop()
	<-envoyDone
	if _, err := get(gateURL + "/healthz"); err == nil {
		t.Errorf("the gate still answers after serve stopped")
	}
}
