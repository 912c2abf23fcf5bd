package https_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/webhook/evaluate"
	"github.com/binderguard/binderguard/webhook/https"
	"github.com/binderguard/binderguard/webhook/internal/testtls"
)

// Load-test settings: the rate the issue asks for, over a small pool of
// keep-alive connections as the API server keeps one: each connection has
// 8 ms for an answer before its next review is due.
const (
	loadRate    = 1000 // reviews per second
	loadWorkers = 8
)

// benchSnapshot is a site with 1,000 banned repositories, 50 ban patterns
// and a LaunchPolicy bounding build pods.
func benchSnapshot(b *testing.B) *snapshot.Snapshot {
	var bans []v1alpha1.RepoBan
	for i := range 1000 {
		bans = append(bans, v1alpha1.RepoBan{
			ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("ban-%d", i)},
			Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/miner%d/repo", i))}},
		})
	}
	for i := range 50 {
		bans = append(bans, v1alpha1.RepoBan{
			ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("pattern-%d", i)},
			Spec:       v1alpha1.RepoBanSpec{Patterns: []v1alpha1.SpecPattern{{Regex: v1alpha1.Regex(fmt.Sprintf("^spam%d/.*", i))}}},
		})
	}
	d := int64(3600)
	lp := v1alpha1.LaunchPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "builds"},
		Spec: v1alpha1.LaunchPolicySpec{Build: &v1alpha1.BuildSpec{
			Resources: &corev1.ResourceRequirements{Limits: corev1.ResourceList{
				"cpu": resource.MustParse("1"), "memory": resource.MustParse("2G"), "ephemeral-storage": resource.MustParse("2G")}},
			ActiveDeadlineSeconds: &d,
		}},
	}
	s, errs := snapshot.New(bans, []v1alpha1.LaunchPolicy{lp})
	if len(errs) > 0 {
		b.Fatalf("benchmark policies: %v", errs)
	}
	return s
}

// benchReviews is the mix the API server sends: build pods to both
// webhooks (one banned), user pods to the validating one.
func benchReviews() []struct {
	path string
	body []byte
} {
	build := func(repo string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "build-x", Namespace: "binder",
			Labels: map[string]string{"component": "binderhub-build"}, Annotations: map[string]string{"binder-repo": repo}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024.07.0",
				Args: []string{"jupyter-repo2docker", "--ref=0123abcd", "--image=binder/x:0123abcd", "--no-run", "--json-logs", repo}}}}}
	}
	user := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "jupyter-x", Namespace: "binder",
		Labels: map[string]string{"component": "singleuser-server", "app": "jupyterhub"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "notebook", Image: "binder/x:0123abcd", Env: []corev1.EnvVar{
			{Name: "BINDER_REPO_URL", Value: "https://github.com/jupyterlab/jupyterlab-demo"},
			{Name: "BINDER_REQUEST", Value: "v2/gh/jupyterlab/jupyterlab-demo/HEAD"},
			{Name: "BINDER_PERSISTENT_REQUEST", Value: "v2/gh/jupyterlab/jupyterlab-demo/HEAD"}}}}}}
	rev := func(p *corev1.Pod) []byte {
		raw, _ := json.Marshal(p)
		out, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: "CREATE",
				Namespace: "binder", Name: p.Name, Object: runtimeRaw(raw)}})
		return out
	}
	return []struct {
		path string
		body []byte
	}{
		{admission.MutatePath, rev(build("https://github.com/jupyterlab/jupyterlab-demo"))},
		{admission.ValidatePath, rev(build("https://github.com/Miner7/Repo.git"))},
		{admission.ValidatePath, rev(user)},
		{admission.MutatePath, rev(build("https://github.com/binder-examples/requirements"))},
	}
}

// BenchmarkAdmissionTLS drives the real webhook server over TLS (1.3,
// HTTP/1.1 keep-alive, as the API server does) at a fixed 1,000 reviews/s,
// open loop: each review's latency runs from when it was due, so a stalled
// server cannot hide its queue. b.N is the number of reviews; run with
// -benchtime=5000x for five seconds. Reports p50/p99/max in ms.
//
// The "allow-all" case is the floor: the same server, TLS, HTTP and load
// loop with a handler that answers "allowed" without looking at the pod.
// What binderguard adds is the difference between the two.
func BenchmarkAdmissionTLS(b *testing.B) {
	snap := benchSnapshot(b)
	hooks, err := admission.New(admission.Config{Policies: func(now time.Time) (evaluate.Policies, bool) {
		return evaluate.FromSnapshot(snap, nil, now), true
	}})
	if err != nil {
		b.Fatal(err)
	}
	allow := cradmission.HandlerFunc(func(context.Context, cradmission.Request) cradmission.Response {
		return cradmission.Allowed("")
	})
	b.Run("binderguard", func(b *testing.B) { loadTLS(b, hooks) })
	b.Run("allow-all", func(b *testing.B) { loadTLS(b, &admission.Hooks{Mutating: allow, Validating: allow}) })
}

func loadTLS(b *testing.B, hooks *admission.Hooks) {
	dir := b.TempDir()
	pool := testtls.Write(b, dir)
	// Time the decision inside the server too, to tell the handler's own
	// cost from TLS, HTTP and a CPU shared with the load generator.
	timed := &timing{}
	hooks = &admission.Hooks{Mutating: timed.wrap(hooks.Mutating), Validating: timed.wrap(hooks.Validating)}
	port := testtls.FreePort(b)
	srv, err := https.New(https.Config{Host: "127.0.0.1", Port: port, CertDir: dir}, hooks)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() { cancel(); <-done }()
	for srv.StartedChecker()(nil) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, MaxIdleConnsPerHost: loadWorkers,
	}}
	defer client.CloseIdleConnections()
	reviews := benchReviews()
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	send := func(i int) error {
		r := reviews[i%len(reviews)]
		resp, err := client.Post(url+r.path, "application/json", bytes.NewReader(r.body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var ar admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if ar.Response == nil || ar.Response.Result.Code >= 400 && ar.Response.Result.Code != 403 {
			return fmt.Errorf("review %d: %+v", i, ar.Response)
		}
		return nil
	}
	// Warm the connections and the TLS sessions outside the measurement.
	for i := range loadWorkers * 4 {
		if err := send(i); err != nil {
			b.Fatal(err)
		}
	}

	// Worker k sends reviews k, k+W, k+2W, ... each at its due time: no
	// dispatcher hand-off between the schedule and the send. A review due
	// while its worker is still waiting on a slow answer is sent late, and
	// its latency counts from when it was due.
	lat := make([]time.Duration, b.N) // from when the review was due
	svc := make([]time.Duration, b.N) // from when it was sent
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	interval := time.Second / loadRate
	b.ResetTimer()
	timed.reset()
	start := time.Now()
	for k := range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < b.N; i += loadWorkers {
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				sent := time.Now()
				if err := send(i); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
				lat[i] = time.Since(due)
				svc[i] = time.Since(sent)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	q := func(d []time.Duration, p float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / 1e6
	}
	b.ReportMetric(q(lat, 0.50), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(lat, 1), "max-ms")
	b.ReportMetric(q(svc, 0.50), "sent-p50-ms")
	b.ReportMetric(q(svc, 0.99), "sent-p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reviews/s")
	b.ReportMetric(timed.quantile(0.99), "handler-p99-ms")
}

// timing records how long each admission decision took inside the server.
type timing struct {
	mu sync.Mutex
	d  []time.Duration
}

func (t *timing) wrap(h cradmission.Handler) cradmission.Handler {
	return cradmission.HandlerFunc(func(ctx context.Context, req cradmission.Request) cradmission.Response {
		start := time.Now()
		r := h.Handle(ctx, req)
		d := time.Since(start)
		t.mu.Lock()
		t.d = append(t.d, d)
		t.mu.Unlock()
		return r
	})
}

func (t *timing) reset() {
	t.mu.Lock()
	t.d = t.d[:0]
	t.mu.Unlock()
}

func (t *timing) quantile(q float64) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.d) == 0 {
		return 0
	}
	sort.Slice(t.d, func(i, j int) bool { return t.d[i] < t.d[j] })
	return float64(t.d[min(len(t.d)-1, int(q*float64(len(t.d))))]) / 1e6
}

// BenchmarkValidateHandler is the decision alone, in process: decode, the
// ban and limit checks against 1,050 bans, and the response.
func BenchmarkValidateHandler(b *testing.B) {
	snap := benchSnapshot(b)
	hooks, err := admission.New(admission.Config{Policies: func(now time.Time) (evaluate.Policies, bool) {
		return evaluate.FromSnapshot(snap, nil, now), true
	}})
	if err != nil {
		b.Fatal(err)
	}
	var reqs []admissionv1.AdmissionReview
	for _, r := range benchReviews() {
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(r.body, &ar); err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, ar)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ar := reqs[i%len(reqs)]
		h := hooks.Validating
		if i%4 == 0 || i%4 == 3 {
			h = hooks.Mutating
		}
		h.Handle(context.Background(), admissionRequest(ar))
	}
}
