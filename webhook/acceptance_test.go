package webhook_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/test/testenv"
	"github.com/binderguard/binderguard/webhook"
)

// warnings collects the Warning headers the API server relays from
// admission webhooks.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// cluster is a real kube-apiserver with the webhook configurations of
// manifests/webhook installed, as `kubectl apply -k manifests/deploy/`
// would for an install in namespace ns, and binderguard's webhook serving
// them from this process.
type cluster struct {
	env   *testenv.Env
	ns    string // the install's namespace, where the binder pods are
	store *snapshot.Store
	reg   *prometheus.Registry
	kube  kubernetes.Interface
	warns *warnings
}

// testNamespace is the install's namespace. Each test starts its own API
// server, so a fixed name cannot clash.
const testNamespace = "bg-accept"

func start(t *testing.T) *cluster {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mutating, validating := renderWebhooks(t, root, testNamespace)
	env := testenv.Start(t, testenv.WithWebhooks(envtest.WebhookInstallOptions{
		MutatingWebhooks: mutating, ValidatingWebhooks: validating,
	}))
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}); err != nil {
		t.Fatalf("create the install's namespace: %v", err)
	}
	c := &cluster{env: env, ns: testNamespace, store: snapshot.NewStore(snapshot.Empty()), reg: prometheus.NewRegistry(), warns: &warnings{}}
	mgr, err := manager.New(env.Config, manager.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// controller-runtime keeps controller names process-wide; a second
		// run of this test in one process (go test -count=N) would collide.
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	wo := env.Webhook
	checks, err := webhook.Setup(mgr, webhook.Config{
		Store: c.store, Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir,
		Registerer: c.reg, ExistingPods: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := checks["webhook"]; !ok || len(checks) != 1 {
		t.Fatalf("readiness checks %v: want only \"webhook\" (external certificates)", slices.Sorted(maps.Keys(checks)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	addr := net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))
	testenv.Eventually(t, 30*time.Second, "webhook server listening", func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
		}
		return err
	})
	testenv.Eventually(t, 30*time.Second, "webhook readiness check passing", func() error { return checks["webhook"](nil) })
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = c.warns
	c.kube = kubernetes.NewForConfigOrDie(cfg)
	return c
}

// renderWebhooks builds manifests/deploy with kustomize's library, its
// namespace set to ns as an operator would, and returns the webhook
// configurations it renders (envtest points their service references at
// the test's webhook server).
func renderWebhooks(t *testing.T, root, ns string) ([]*admissionregistrationv1.MutatingWebhookConfiguration, []*admissionregistrationv1.ValidatingWebhookConfiguration) {
	t.Helper()
	tmp := t.TempDir()
	if err := os.CopyFS(tmp, os.DirFS(filepath.Join(root, "manifests"))); err != nil {
		t.Fatal(err)
	}
	kust := filepath.Join(tmp, "deploy", "kustomization.yaml")
	b, err := os.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^namespace: .*$`)
	if n := len(line.FindAll(b, -1)); n != 1 {
		t.Fatalf("%s has %d namespace lines, want 1", kust, n)
	}
	if err := os.WriteFile(kust, line.ReplaceAll(b, []byte("namespace: "+ns)), 0o644); err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Dir(kust))
	if err != nil {
		t.Fatalf("kustomize build manifests/deploy: %v", err)
	}
	var mutating []*admissionregistrationv1.MutatingWebhookConfiguration
	var validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	for _, r := range rm.Resources() {
		var obj any
		switch r.GetKind() {
		case "MutatingWebhookConfiguration":
			m := &admissionregistrationv1.MutatingWebhookConfiguration{}
			mutating, obj = append(mutating, m), m
		case "ValidatingWebhookConfiguration":
			v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			validating, obj = append(validating, v), v
		default:
			continue
		}
		y, err := r.AsYAML()
		if err == nil {
			err = yaml.UnmarshalStrict(y, obj)
		}
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
	}
	if len(mutating) != 1 || len(validating) != 1 {
		t.Fatalf("rendered %d mutating and %d validating webhook configurations, want one each", len(mutating), len(validating))
	}
	return mutating, validating
}

// sync does what the kube policy source does in `binderguard serve`:
// rebuild the snapshot from the API server's policies.
func (c *cluster) sync(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var bans v1alpha1.RepoBanList
	var lps v1alpha1.LaunchPolicyList
	if err := c.env.Client.List(ctx, &bans); err != nil {
		t.Fatal(err)
	}
	if err := c.env.Client.List(ctx, &lps); err != nil {
		t.Fatal(err)
	}
	s, errs := snapshot.New(bans.Items, lps.Items)
	if len(errs) > 0 {
		t.Fatalf("policies rejected: %v", errs)
	}
	c.store.Store(s)
}

func (c *cluster) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := c.env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func ban(ns, name, repo string, mode string, onExisting v1alpha1.OnExisting) *v1alpha1.RepoBan {
	return &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(repo)}, Mode: v1alpha1.Mode(mode),
			Message: "This repository mines cryptocurrency.", OnExisting: onExisting},
	}
}

var maxima = corev1.ResourceList{"cpu": resource.MustParse("1"), "memory": resource.MustParse("2G"), "ephemeral-storage": resource.MustParse("2G")}

var defaultRequests = corev1.ResourceList{"cpu": resource.MustParse("250m"), "memory": resource.MustParse("1G")}

// buildsPolicy is a LaunchPolicy with the build maxima, 1 h deadlines and
// the given default requests (nil: none).
func buildsPolicy(ns string, requests corev1.ResourceList) *v1alpha1.LaunchPolicy {
	d := int64(3600)
	return &v1alpha1.LaunchPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builds"},
		Spec: v1alpha1.LaunchPolicySpec{Build: &v1alpha1.BuildSpec{
			Resources:             &corev1.ResourceRequirements{Limits: maxima, Requests: requests},
			ActiveDeadlineSeconds: &d,
		}},
	}
}

func buildPod(name, repo string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{"component": "binderhub-build", "name": name},
			Annotations: map[string]string{"binder-repo": repo}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024.07.0",
				Args: []string{"jupyter-repo2docker", "--ref=0123abcd", "--image=binder/x:0123abcd", "--no-run", "--json-logs", repo}}},
		},
	}
}

func userPod(name string, env ...string) *corev1.Pod {
	c := corev1.Container{Name: "notebook", Image: "binder/x:0123abcd"}
	for i := 0; i+1 < len(env); i += 2 {
		c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"component": "singleuser-server", "app": "jupyterhub", "heritage": "jupyterhub"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

func TestAdmissionAgainstAPIServer(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	ns := c.ns
	pods := c.kube.CoreV1().Pods(ns)

	c.create(t, ban(ns, "crypto", "gh/bad/miner", "Enforce", v1alpha1.OnExistingIgnore))
	c.create(t, ban(ns, "watch", "gh/warn/me", "Warn", v1alpha1.OnExistingIgnore))
	c.create(t, ban(ns, "record", "gh/audit/me", "Audit", v1alpha1.OnExistingIgnore))
	c.create(t, buildsPolicy(ns, defaultRequests))
	c.sync(t)

	t.Run("a build pod of a banned repository is denied however it is spelled", func(t *testing.T) {
		for i, repo := range []string{
			"https://github.com/bad/miner",
			"https://GitHub.com/Bad/Miner.git",
			"git@github.com:bad/MINER.git",
			"http://github.com/bad/miner/",
		} {
			_, err := pods.Create(ctx, buildPod(fmt.Sprintf("build-banned-%d", i), repo), metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("%s: create returned %v, want a Forbidden denial", repo, err)
			}
			for _, want := range []string{`admission webhook "repo-bans.binderguard.io" denied the request`,
				"build pod of repository github.com/bad/miner is banned by RepoBan/" + ns + "/crypto",
				`(rule "`, "This repository mines cryptocurrency."} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: denial %q lacks %q", repo, err, want)
				}
			}
		}
		t.Logf("kubectl would show: %v", func() error {
			_, err := pods.Create(ctx, buildPod("build-banned-x", "https://github.com/bad/miner"), metav1.CreateOptions{})
			return err
		}())
	})

	t.Run("a user pod of a banned repository is denied from any BINDER variable", func(t *testing.T) {
		for i, env := range [][]string{
			{"BINDER_REPO_URL", "https://github.com/Bad/Miner"},
			{"BINDER_REQUEST", "v2/gh/bad/miner/HEAD"},
			{"BINDER_REPO_URL", "https://github.com/some/other", "BINDER_PERSISTENT_REQUEST", "v2/git/https%3A%2F%2Fgithub.com%2Fbad%2Fminer.git/main"},
		} {
			_, err := pods.Create(ctx, userPod(fmt.Sprintf("jupyter-banned-%d", i), env...), metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "user pod of repository github.com/bad/miner is banned by RepoBan/"+ns+"/crypto") {
				t.Fatalf("%v: create returned %v, want the ban's denial", env, err)
			}
		}
	})

	t.Run("a build pod without limits comes back with limits, requests and a deadline", func(t *testing.T) {
		p, err := pods.Create(ctx, buildPod("build-ok", "https://github.com/good/repo"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := p.Spec.Containers[0].Resources
		for name, want := range maxima {
			if got := r.Limits[name]; got.Cmp(want) != 0 {
				t.Errorf("limit %s = %v, want %v", name, got.String(), want.String())
			}
		}
		if got := r.Requests["cpu"]; got.Cmp(resource.MustParse("250m")) != 0 {
			t.Errorf("cpu request = %v, want 250m", got.String())
		}
		if p.Spec.ActiveDeadlineSeconds == nil || *p.Spec.ActiveDeadlineSeconds != 3600 {
			t.Errorf("activeDeadlineSeconds = %v, want 3600", p.Spec.ActiveDeadlineSeconds)
		}
	})

	t.Run("a build pod over the maximum is clamped on create", func(t *testing.T) {
		p := buildPod("build-big", "https://github.com/good/big")
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("8"), "memory": resource.MustParse("64G")}
		got, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l := got.Spec.Containers[0].Resources.Limits; l.Cpu().Cmp(resource.MustParse("1")) != 0 || l.Memory().Cmp(resource.MustParse("2G")) != 0 {
			t.Fatalf("limits %v, want clamped to cpu 1, memory 2G", l)
		}
	})

	t.Run("a resize of a build pod above the maximum is denied", func(t *testing.T) {
		p, err := pods.Get(ctx, "build-ok", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.Containers[0].Resources.Limits["cpu"] = resource.MustParse("16")
		p.Spec.Containers[0].Resources.Requests["cpu"] = resource.MustParse("16")
		_, err = pods.UpdateResize(ctx, p.Name, p, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), "exceeds the maximum 1") {
			t.Fatalf("resize returned %v, want the maximum's denial", err)
		}
	})

	t.Run("a Warn ban allows the pod with a short warning", func(t *testing.T) {
		c.warns.take()
		if _, err := pods.Create(ctx, userPod("jupyter-warn", "BINDER_REPO_URL", "https://github.com/warn/me"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w := c.warns.take()
		if len(w) != 1 || !strings.Contains(w[0], "github.com/warn/me banned by RepoBan/"+ns+"/watch") || len(w[0]) >= 120 {
			t.Fatalf("warnings %q, want one under 120 characters naming the ban", w)
		}
	})

	t.Run("an Audit ban allows the pod and records a metric and an Event", func(t *testing.T) {
		c.warns.take()
		if _, err := pods.Create(ctx, buildPod("build-audit", "https://github.com/audit/me"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := c.warns.take(); len(w) != 0 {
			t.Errorf("Audit returned warnings %q", w)
		}
		testenv.Eventually(t, 30*time.Second, "audit event", func() error {
			var evs eventsv1.EventList
			if err := c.env.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Reason == "PolicyAudit" && e.Regarding.Name == "build-audit" && e.Related != nil && e.Related.Name == "record" &&
					strings.Contains(e.Note, "Audit mode: allowed") {
					return nil
				}
			}
			return fmt.Errorf("no PolicyAudit event among %d", len(evs.Items))
		})
		if n := findings(t, c.reg, "Audit", "RepoBan/"+ns+"/record"); n != 1 {
			t.Errorf("audit findings metric = %v, want 1", n)
		}
	})

	t.Run("pods outside the selectors are untouched", func(t *testing.T) {
		// The webhooks are not even called: the review counter stands still.
		before := reviews(t, c.reg)
		defer func() {
			if after := reviews(t, c.reg); after != before {
				t.Errorf("the webhook answered %v reviews for pods outside its selectors", after-before)
			}
		}()
		// No component label, like binderguard's own pods in this same
		// namespace: neither webhook is called.
		p := buildPod("not-binder", "https://github.com/bad/miner")
		delete(p.Labels, "component")
		p.Labels["app.kubernetes.io/name"] = "binderguard"
		got, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("unlabelled pod: %v", err)
		}
		if got.Spec.ActiveDeadlineSeconds != nil || got.Spec.Containers[0].Resources.Limits != nil {
			t.Errorf("unlabelled pod was mutated: %+v", got.Spec)
		}
		// A JupyterHub user pod without any BINDER_* variable is skipped by matchConditions.
		if _, err := pods.Create(ctx, userPod("jupyter-plain"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("plain user pod: %v", err)
		}
		// Only the install's own namespace is intercepted (the binder pods
		// live there; its own pods carry no component label, above): never
		// another namespace, such as another BinderHub's with its own
		// binderguard and policies, nor kube-system, nor one switched off
		// by the break-glass label.
		other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other-binder"}}
		c.create(t, other)
		glass := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bg-glass-", Labels: map[string]string{"binderguard.io/admission": "disabled"}}}
		c.create(t, glass)
		for _, name := range []string{other.Name, "kube-system", glass.Name} {
			got, err := c.kube.CoreV1().Pods(name).Create(ctx, buildPod("build-excluded", "https://github.com/bad/miner"), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("banned build pod in %s: %v", name, err)
			}
			if got.Spec.ActiveDeadlineSeconds != nil {
				t.Errorf("pod in %s was mutated", name)
			}
		}
	})

	t.Run("a ban with onExisting Report lists the running user pod and leaves it", func(t *testing.T) {
		if _, err := pods.Create(ctx, userPod("jupyter-running", "BINDER_REQUEST", "v2/gh/report/me/HEAD"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.create(t, ban(ns, "report", "git/https%3A%2F%2Fgithub.com%2FReport%2FMe.git", "Enforce", v1alpha1.OnExistingReport))
		c.sync(t)
		testenv.Eventually(t, 30*time.Second, "ban status lists the running pod", func() error {
			var rb v1alpha1.RepoBan
			if err := c.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "report"}, &rb); err != nil {
				return err
			}
			if st := rb.Status; st.MatchedPodCount != 1 || len(st.MatchedPods) != 1 || st.MatchedPods[0].Name != "jupyter-running" ||
				st.MatchedPods[0].Action != v1alpha1.PodActionReported || st.MatchedPods[0].Role != v1alpha1.PodRoleUser {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		if _, err := pods.Get(ctx, "jupyter-running", metav1.GetOptions{}); err != nil {
			t.Fatalf("reported pod: %v", err)
		}
	})

	t.Run("a ban with onExisting Delete removes the running build pod and says so", func(t *testing.T) {
		if _, err := pods.Create(ctx, buildPod("build-running", "https://github.com/late/ban"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Create(ctx, buildPod("build-bystander", "https://github.com/late/other"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.create(t, ban(ns, "late", "gh/Late/Ban", "Enforce", v1alpha1.OnExistingDelete))
		c.sync(t)
		testenv.Eventually(t, 60*time.Second, "banned build pod deleted", func() error {
			_, err := pods.Get(ctx, "build-running", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod still there (err %v)", err)
		})
		if _, err := pods.Get(ctx, "build-bystander", metav1.GetOptions{}); err != nil {
			t.Fatalf("pod of another repository: %v", err)
		}
		testenv.Eventually(t, 30*time.Second, "ban status lists the deleted pod", func() error {
			var rb v1alpha1.RepoBan
			if err := c.env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "late"}, &rb); err != nil {
				return err
			}
			st := rb.Status
			if st.MatchedPodCount != 1 || len(st.MatchedPods) != 1 || st.MatchedPods[0].Name != "build-running" ||
				st.MatchedPods[0].Action != v1alpha1.PodActionDeleted || st.MatchedPods[0].Role != v1alpha1.PodRoleBuild {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
	})

	// Last: it removes the mutating webhook, as an outage of the mutating
	// call would (failurePolicy Ignore), and shows the validating webhook
	// still holding the line.
	t.Run("with the mutating webhook gone a build pod over the maximum or without limits is denied", func(t *testing.T) {
		if err := c.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "binderguard-"+ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		over := func(i int) *corev1.Pod {
			p := buildPod(fmt.Sprintf("build-over-%d", i), "https://github.com/good/repo")
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("4"), "memory": resource.MustParse("1G"), "ephemeral-storage": resource.MustParse("1G")}
			p.Spec.ActiveDeadlineSeconds = buildsPolicy(ns, nil).Spec.Build.ActiveDeadlineSeconds
			return p
		}
		i := 0
		testenv.Eventually(t, 30*time.Second, "over-maximum build pod denied by the validating webhook", func() error {
			i++
			_, err := pods.Create(ctx, over(i), metav1.CreateOptions{})
			if err != nil && strings.Contains(err.Error(), "limits[cpu]: Invalid value: \"4\": exceeds the maximum 1") &&
				strings.Contains(err.Error(), "LaunchPolicy/"+ns+"/builds") {
				return nil
			}
			return fmt.Errorf("create returned %v", err)
		})
		_, err := pods.Create(ctx, buildPod("build-bare", "https://github.com/good/repo"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "a limit of at most 1 is required") || !strings.Contains(err.Error(), "deadline of at most 3600s") {
			t.Fatalf("bare build pod: %v, want denial for missing limits and deadline", err)
		}
	})

	t.Run("the break-glass label switches the webhooks off for a namespace", func(t *testing.T) {
		var nsObj corev1.Namespace
		if err := c.env.Client.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
			t.Fatal(err)
		}
		orig := nsObj.DeepCopy()
		if nsObj.Labels == nil {
			nsObj.Labels = map[string]string{}
		}
		nsObj.Labels["binderguard.io/admission"] = "disabled"
		if err := c.env.Client.Patch(ctx, &nsObj, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		i := 0
		testenv.Eventually(t, 30*time.Second, "banned build pod admitted in a disabled namespace", func() error {
			i++
			_, err := pods.Create(ctx, buildPod(fmt.Sprintf("build-glass-%d", i), "https://github.com/bad/miner"), metav1.CreateOptions{})
			return err
		})
	})
}

func findings(t *testing.T, g prometheus.Gatherer, mode, policy string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "binderguard_webhook_policy_findings_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["mode"] == mode && labels["policy"] == policy {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// reviews is how many admission reviews the webhook has answered.
func reviews(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "binderguard_webhook_reviews_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
