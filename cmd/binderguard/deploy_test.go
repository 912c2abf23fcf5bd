package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	testenv "github.com/binderguard/binderguard/test/envtest"
)

// TestDeployManifests decodes every manifest in manifests/deploy strictly
// with the Kubernetes scheme (unknown or duplicate fields fail) and checks
// that the kustomization lists exactly those files and that the pieces
// refer to each other by the right names and ports.
func TestDeployManifests(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "manifests", "deploy")
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
		Labels     []struct {
			Pairs            map[string]string `json:"pairs"`
			IncludeSelectors bool              `json:"includeSelectors"`
		} `json:"labels"`
		Images []struct {
			Name, NewTag string
		} `json:"images"`
	}
	kb, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(kb, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(kust.Resources)), listed) {
		t.Errorf("kustomization resources %v, files %v", kust.Resources, listed)
	}

	objs := map[string]runtime.Object{} // "Kind/name"
	for _, name := range kust.Resources {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range manifestDocs(b) {
			js, err := yaml.YAMLToJSONStrict(doc)
			if err != nil {
				t.Fatalf("%s document %d: %v", name, i, err)
			}
			obj, gvk, err := decoder.Decode(js, nil, nil)
			if err != nil {
				t.Fatalf("%s document %d: %v", name, i, err)
			}
			m, err := meta.Accessor(obj)
			if err != nil {
				t.Fatal(err)
			}
			if m.GetNamespace() != "" {
				t.Errorf("%s %s sets a namespace; kustomization.yaml sets it", gvk.Kind, m.GetName())
			}
			objs[gvk.Kind+"/"+m.GetName()] = obj
		}
	}

	dep, ok := objs["Deployment/binderguard"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment binderguard among %v", manifestKeys(objs))
	}
	checkDeployment(t, dep, kust.Namespace, objs)
}

// splitYAML splits a multi-document YAML file, dropping empty documents.
func manifestDocs(b []byte) [][]byte {
	var out [][]byte
	for doc := range strings.SplitSeq(string(b), "\n---") {
		doc = strings.TrimPrefix(doc, "\n")
		if strings.TrimSpace(manifestStripComments(doc)) != "" {
			out = append(out, []byte(doc))
		}
	}
	return out
}

func manifestStripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func manifestKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// checkDeployment checks that the Deployment's flags parse, and that its
// ports, Services, RBAC and disruption budget agree with each other.
func checkDeployment(t *testing.T, dep *appsv1.Deployment, ns string, objs map[string]runtime.Object) {
	t.Helper()
	pod := dep.Spec.Template
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("the Deployment's selector does not match its pods: %v", err)
	}
	containers := map[string]corev1.Container{}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		containers[c.Name] = c
	}
	envoy, bg, boot := containers["envoy"], containers["binderguard"], containers["bootstrap"]
	if envoy.Image != "envoyproxy/envoy:v1.40.0" {
		t.Errorf("envoy image %q", envoy.Image)
	}
	port := func(c corev1.Container, name string) int {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort)
			}
		}
		t.Errorf("container %s has no port %q", c.Name, name)
		return -1
	}

	// The serve flags, as the kubelet expands them.
	expand := func(s string) string {
		return strings.NewReplacer("$(POD_NAMESPACE)", ns, "$(POD_NAME)", "binderguard-0").Replace(s)
	}
	var args []string
	for _, a := range bg.Args[1:] {
		if strings.HasPrefix(a, "--cert-dir=") {
			a = "--cert-dir=" + t.TempDir() // the Secret mount
		}
		args = append(args, expand(a))
	}
	if bg.Args[0] != "serve" {
		t.Fatalf("binderguard runs %q, want serve", bg.Args[0])
	}
	c, err := parseServe(args, io.Discard, func(k string) string {
		if k == "POD_NAMESPACE" {
			return ns
		}
		return ""
	})
	if err != nil {
		t.Fatalf("serve flags in the Deployment: %v", err)
	}
	if c.upstream.String() != "http://binder."+ns+".svc" {
		t.Errorf("upstream %s, want BinderHub's Service binder in %s", c.upstream, ns)
	}
	for flag, pair := range map[string][2]int{
		"gate-addr":    {manifestPort(t, c.gateAddr), port(bg, "gate")},
		"metrics-addr": {manifestPort(t, c.metricsAddr), port(bg, "metrics")},
		"health-addr":  {manifestPort(t, c.healthAddr), port(bg, "health")},
		"webhook-port": {c.webhookPort, port(bg, "webhook")},
		"envoy-listen": {int(c.envoyListen.Port), port(envoy, "http")},
	} {
		if pair[0] != pair[1] {
			t.Errorf("--%s port %d, container port %d", flag, pair[0], pair[1])
		}
	}
	if want := "binderguard-gate." + ns + ".svc"; c.gateEndpoint.Host != want || int(c.gateEndpoint.Port) != port(bg, "gate") {
		t.Errorf("gate endpoint %s, want %s:%d", c.gateEndpoint, want, port(bg, "gate"))
	}
	for _, p := range []*corev1.Probe{bg.LivenessProbe, bg.ReadinessProbe, bg.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "health" {
			t.Errorf("binderguard probe %+v, want an HTTP probe on the health port", p)
		}
	}
	if bg.ReadinessProbe.HTTPGet.Path != "/readyz" || bg.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("binderguard probes %s and %s", bg.ReadinessProbe.HTTPGet.Path, bg.LivenessProbe.HTTPGet.Path)
	}

	// The bootstrap: the init container's flags parse, and Envoy dials the
	// xDS port serve listens on.
	script := expand(strings.Join(boot.Args, " "))
	cmdline, out, ok := strings.Cut(script, ">")
	if !ok || strings.TrimSpace(out) != "/etc/envoy/envoy.yaml" || !slices.Contains(envoy.Args, "--config-path=/etc/envoy/envoy.yaml") {
		t.Errorf("bootstrap %q and envoy %q disagree on the bootstrap file", script, envoy.Args)
	}
	f := strings.Fields(strings.ReplaceAll(cmdline, `"`, ""))
	if len(f) < 3 || f[0] != "exec" || f[1] != "binderguard" || f[2] != "bootstrap" {
		t.Fatalf("bootstrap runs %q", cmdline)
	}
	var boot1 bytes.Buffer
	if err := runBootstrap(context.Background(), f[3:], &boot1); err != nil {
		t.Fatalf("bootstrap flags in the Deployment: %v", err)
	}
	if !strings.Contains(boot1.String(), "port_value: "+strconv.Itoa(manifestPort(t, c.xdsAddr))) {
		t.Errorf("the bootstrap does not dial serve's xDS port %s:\n%s", c.xdsAddr, boot1.String())
	}

	// Services select these pods and reach named container ports.
	for name, target := range map[string]string{"binderguard": "http", "binderguard-webhook": "webhook", "binderguard-gate": "gate"} {
		svc, ok := objs["Service/"+name].(*corev1.Service)
		if !ok {
			t.Errorf("no Service %s", name)
			continue
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("Service %s does not select the pods", name)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != target {
			t.Errorf("Service %s ports %+v, want target %s", name, svc.Spec.Ports, target)
		}
	}
	if svc := objs["Service/binderguard"].(*corev1.Service); svc.Spec.Ports[0].Port != 80 {
		t.Errorf("Service binderguard port %d, want 80 like BinderHub's binder Service", svc.Spec.Ports[0].Port)
	}
	if svc := objs["Service/binderguard-gate"].(*corev1.Service); svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service binderguard-gate must be headless so Envoy sees every gate replica")
	}
	pdb, ok := objs["PodDisruptionBudget/binderguard"].(*policyv1.PodDisruptionBudget)
	if !ok {
		t.Fatal("no PodDisruptionBudget binderguard")
	}
	if s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || !s.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the PodDisruptionBudget does not select the pods")
	}

	// RBAC: the binding names the pod's ServiceAccount in the namespace
	// kustomize puts it in, and the Role allows what serve does.
	rb, ok := objs["RoleBinding/binderguard"].(*rbacv1.RoleBinding)
	if !ok || len(rb.Subjects) != 1 || rb.Subjects[0].Name != pod.Spec.ServiceAccountName || rb.Subjects[0].Namespace != ns {
		t.Errorf("RoleBinding %+v, want ServiceAccount %s/%s", rb, ns, pod.Spec.ServiceAccountName)
	}
	if _, ok := objs["ServiceAccount/"+pod.Spec.ServiceAccountName]; !ok {
		t.Errorf("no ServiceAccount %s", pod.Spec.ServiceAccountName)
	}
	role, ok := objs["Role/"+rb.RoleRef.Name].(*rbacv1.Role)
	if !ok {
		t.Fatalf("no Role %s", rb.RoleRef.Name)
	}
	allowed := func(group, res, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, need := range [][3]string{
		{"binderguard.io", "repobans", "watch"}, {"binderguard.io", "launchpolicies", "list"},
		{"binderguard.io", "repobans/status", "update"}, {"binderguard.io", "launchpolicies/status", "patch"},
		{"", "pods", "list"}, {"", "pods", "delete"}, {"", "events", "create"}, {"events.k8s.io", "events", "create"},
		{"coordination.k8s.io", "leases", "create"}, {"coordination.k8s.io", "leases", "update"},
	} {
		if !allowed(need[0], need[1], need[2]) {
			t.Errorf("the Role does not allow %s on %s.%s", need[2], need[1], need[0])
		}
	}
}

func manifestPort(t *testing.T, addr string) int {
	t.Helper()
	p, err := parseListenPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
