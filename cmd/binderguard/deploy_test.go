package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/testenv"
	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/webhook/certs"
)

// TestDeployManifests builds manifests/deploy with kustomize's own library
// (what `kubectl apply -k` runs), as shipped and again with nothing but the
// kustomization's namespace changed, each without and with the
// cert-manager component, decodes every rendered object strictly (unknown
// or duplicate fields fail) and checks that the pieces refer to each other
// by the right names, ports and namespace.
func TestDeployManifests(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "manifests", "deploy")
	shipped := kustomizationNamespace(t, dir)
	const moved = "bg-elsewhere"

	for _, mode := range []certs.Mode{certs.SelfSigned, certs.External} {
		// The shipped kustomization, or a copy with the component's line
		// uncommented as an operator would.
		render := func(ns string) map[string]any {
			if ns == shipped && mode == certs.SelfSigned {
				return renderManifests(t, dir)
			}
			return renderManifests(t, movedKustomization(t, root, shipped, ns, mode == certs.External))
		}
		t.Run(mode.String()+" certificates: as shipped every object and reference is in the kustomization's namespace", func(t *testing.T) {
			checkRendered(t, render(shipped), shipped, mode)
		})

		t.Run(mode.String()+" certificates: changing only the kustomization's namespace moves every reference with it", func(t *testing.T) {
			objs := render(moved)
			checkRendered(t, objs, moved, mode)
			for key, obj := range objs {
				if s, ok := mentions(obj, shipped); ok {
					t.Errorf("%s still names the namespace %q: %q", key, shipped, s)
				}
			}
		})

		t.Run(mode.String()+" certificates: installs in two namespaces share no cluster-scoped object", func(t *testing.T) {
			a, b := render(shipped), render(moved)
			var clusterScoped []string
			for key := range a {
				if kind, _, _ := strings.Cut(key, "/"); !deployKinds[kind] {
					clusterScoped = append(clusterScoped, kind)
					if b[key] != nil {
						t.Errorf("both installs apply cluster-scoped %s: the second overwrites the first", key)
					}
				}
			}
			// The two webhook configurations; self-signed, also the
			// ClusterRole (and its binding) that lets binderguard write
			// their caBundle.
			want := []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
			if mode == certs.SelfSigned {
				want = append(want, "ClusterRole", "ClusterRoleBinding")
			}
			if slices.Sort(clusterScoped); !slices.Equal(clusterScoped, slices.Sorted(slices.Values(want))) {
				t.Errorf("cluster-scoped objects %v, want %v", clusterScoped, want)
			}
		})
	}

	t.Run("each kustomization lists its directory and no file sets a namespace", func(t *testing.T) {
		checkSources(t, dir, filepath.Join(root, "manifests", "webhook"), filepath.Join(root, "manifests", "webhook", "cert-manager"))
	})

	t.Run("the webhook Service is defined once among all manifests", func(t *testing.T) {
		n := 0
		err := filepath.WalkDir(filepath.Join(root, "manifests"), func(path string, d fs.DirEntry, err error) error {
			// The chart's templates are not YAML until rendered; the
			// kustomize base is their rendering (manifests/render).
			if err == nil && d.IsDir() && path == filepath.Join(root, "manifests", "chart") {
				return filepath.SkipDir
			}
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, doc := range manifestDocs(b) {
				var o struct {
					Kind     string                `json:"kind"`
					Metadata struct{ Name string } `json:"metadata"`
				}
				if err := yaml.Unmarshal(doc, &o); err != nil {
					t.Errorf("%s: %v", path, err)
				}
				if o.Kind == "Service" && o.Metadata.Name == "binderguard-webhook" {
					n++
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("Service binderguard-webhook defined %d times under manifests/ (the chart aside), want once", n)
		}
	})
}

// Kinds the deployment may contain, and whether each is namespaced. The
// one ClusterRole lets binderguard write the caBundle of its own two
// webhook configurations (self-signed certificates; checkCertificates).
var deployKinds = map[string]bool{
	"ServiceAccount": true, "Role": true, "RoleBinding": true, "Deployment": true, "Service": true,
	"PodDisruptionBudget": true, "NetworkPolicy": true, "Issuer": true, "Certificate": true, "Secret": true,
	"MutatingWebhookConfiguration": false, "ValidatingWebhookConfiguration": false,
	"ClusterRole": false, "ClusterRoleBinding": false,
}

// renderManifests runs kustomize on dir and decodes the output strictly,
// keyed "Kind/name".
func renderManifests(t *testing.T, dir string) map[string]any {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	objs := map[string]any{}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSONStrict(y)
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		var obj any
		switch r.GetKind() {
		case "Issuer":
			obj = &certIssuer{}
		case "Certificate":
			obj = &certCertificate{}
		}
		if obj != nil {
			err = yaml.UnmarshalStrict(y, obj)
		} else {
			obj, _, err = decoder.Decode(js, nil, nil)
		}
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		key := r.GetKind() + "/" + r.GetName()
		if _, dup := objs[key]; dup {
			t.Errorf("%s rendered twice", key)
		}
		objs[key] = obj
	}
	return objs
}

// checkRendered checks a rendering whose kustomization namespace is ns,
// with the certificate kept in mode.
func checkRendered(t *testing.T, objs map[string]any, ns string, mode certs.Mode) {
	t.Helper()
	for key, obj := range objs {
		kind, _, _ := strings.Cut(key, "/")
		namespaced, known := deployKinds[kind]
		if !known {
			t.Errorf("unexpected %s: add its kind to deployKinds if it belongs", key)
			continue
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			t.Fatal(err)
		}
		if namespaced && m.GetNamespace() != ns {
			t.Errorf("%s is in namespace %q, want %q", key, m.GetNamespace(), ns)
		}
		if !namespaced && m.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s has namespace %q", key, m.GetNamespace())
		}
	}
	dep, ok := objs["Deployment/binderguard"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment binderguard among %v", manifestKeys(objs))
	}
	serve := checkDeployment(t, dep, ns, objs)
	checkWebhooks(t, dep, ns, objs)
	checkCertificates(t, dep, ns, objs, serve, mode)
}

// checkWebhooks checks that both webhook configurations reach the
// webhook Service in ns (checkCertificates checks the certificate for its
// name), and that their selectors see binder pods in ns, and never
// binderguard's own pods or any other namespace.
func checkWebhooks(t *testing.T, dep *appsv1.Deployment, ns string, objs map[string]any) {
	t.Helper()
	svc, ok := objs["Service/binderguard-webhook"].(*corev1.Service)
	if !ok {
		t.Fatal("no Service binderguard-webhook")
	}

	type hook struct {
		name, path string
		cc         admissionregistrationv1.WebhookClientConfig
		nsSel      *metav1.LabelSelector
		objSel     *metav1.LabelSelector
		components []string // binder pods it must see
	}
	var hooks []hook
	// Cluster-scoped, so named after the install's namespace: installs in
	// other namespaces have their own.
	mwc, ok := objs["MutatingWebhookConfiguration/binderguard-"+ns].(*admissionregistrationv1.MutatingWebhookConfiguration)
	if !ok {
		t.Fatalf("no MutatingWebhookConfiguration binderguard-%s among %v", ns, manifestKeys(objs))
	}
	for _, w := range mwc.Webhooks {
		hooks = append(hooks, hook{w.Name, admission.MutatePath, w.ClientConfig, w.NamespaceSelector, w.ObjectSelector, []string{"binderhub-build"}})
	}
	vwc, ok := objs["ValidatingWebhookConfiguration/binderguard-"+ns].(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok {
		t.Fatalf("no ValidatingWebhookConfiguration binderguard-%s among %v", ns, manifestKeys(objs))
	}
	for _, w := range vwc.Webhooks {
		hooks = append(hooks, hook{w.Name, admission.ValidatePath, w.ClientConfig, w.NamespaceSelector, w.ObjectSelector, []string{"binderhub-build", "singleuser-server"}})
	}
	if len(hooks) != 2 {
		t.Errorf("%d webhooks, want one mutating and one validating", len(hooks))
	}
	selects := func(name string, ls *metav1.LabelSelector, set map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatalf("webhook %s: %v", name, err)
		}
		return s.Matches(labels.Set(set))
	}
	for _, h := range hooks {
		ref := h.cc.Service
		if ref == nil || h.cc.URL != nil {
			t.Errorf("webhook %s: client config %+v, want the Service only", h.name, h.cc)
			continue
		}
		if path := ptr.Deref(ref.Path, ""); ref.Name != svc.Name || ref.Namespace != ns || path != h.path {
			t.Errorf("webhook %s calls %s/%s%s, want %s/%s%s", h.name, ref.Namespace, ref.Name, path, ns, svc.Name, h.path)
		}
		if ref.Port == nil || len(svc.Spec.Ports) != 1 || *ref.Port != svc.Spec.Ports[0].Port {
			t.Errorf("webhook %s calls port %v, Service ports %+v", h.name, ref.Port, svc.Spec.Ports)
		}
		nsLabels := func(name string, extra ...string) map[string]string {
			l := map[string]string{"kubernetes.io/metadata.name": name}
			for i := 0; i+1 < len(extra); i += 2 {
				l[extra[i]] = extra[i+1]
			}
			return l
		}
		// binderguard lives beside the binder pods: its namespace must be seen.
		if !selects(h.name, h.nsSel, nsLabels(ns)) {
			t.Errorf("webhook %s does not see namespace %s, where the binder pods are", h.name, ns)
		}
		// serve judges pods by its own namespace's policies only: another
		// namespace (another BinderHub's, or kube-system) is not its to judge.
		for _, other := range []string{"other-binder", "kube-system"} {
			if selects(h.name, h.nsSel, nsLabels(other)) {
				t.Errorf("webhook %s of the install in %s sees namespace %s", h.name, ns, other)
			}
		}
		if selects(h.name, h.nsSel, nsLabels(ns, "binderguard.io/admission", "disabled")) {
			t.Errorf("webhook %s ignores the break-glass label binderguard.io/admission=disabled", h.name)
		}
		// binderguard's own pods never wait on binderguard.
		if selects(h.name, h.objSel, dep.Spec.Template.Labels) {
			t.Errorf("webhook %s selects binderguard's own pods %v", h.name, dep.Spec.Template.Labels)
		}
		for _, c := range h.components {
			if !selects(h.name, h.objSel, map[string]string{"component": c}) {
				t.Errorf("webhook %s does not select component=%s", h.name, c)
			}
		}
	}
}

// checkSources checks each kustomization directory: it lists exactly the
// YAML files beside it (other entries must be kustomization directories),
// and no listed manifest sets metadata.namespace (kustomize sets it).
func checkSources(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		var kust struct{ Resources []string }
		b, errs := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		errs = errors.Join(errs, yaml.Unmarshal(b, &kust))
		present, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		present = slices.DeleteFunc(present, func(p string) bool { return filepath.Base(p) == "kustomization.yaml" })
		var listed []string
		for _, r := range kust.Resources {
			p := filepath.Join(dir, r)
			if !strings.HasSuffix(r, ".yaml") {
				_, err := os.Stat(filepath.Join(p, "kustomization.yaml"))
				errs = errors.Join(errs, err)
				continue
			}
			listed = append(listed, p)
			b, err := os.ReadFile(p)
			errs = errors.Join(errs, err)
			for _, doc := range manifestDocs(b) {
				var o struct {
					Metadata struct{ Name, Namespace string }
				}
				errs = errors.Join(errs, yaml.Unmarshal(doc, &o))
				if o.Metadata.Namespace != "" {
					t.Errorf("%s: %s sets namespace %q; kustomization.yaml sets it", p, o.Metadata.Name, o.Metadata.Namespace)
				}
			}
		}
		if errs != nil {
			t.Fatalf("%s: %v", dir, errs)
		}
		if slices.Sort(listed); !slices.Equal(listed, present) {
			t.Errorf("%s/kustomization.yaml lists %v, directory has %v", dir, listed, present)
		}
	}
}

func kustomizationNamespace(t *testing.T, dir string) string {
	t.Helper()
	var kust struct{ Namespace string }
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err == nil {
		err = yaml.Unmarshal(b, &kust)
	}
	if err != nil || kust.Namespace == "" {
		t.Fatalf("the namespace of %s/kustomization.yaml: %q, %v", dir, kust.Namespace, err)
	}
	return kust.Namespace
}

// movedKustomization copies manifests/ (the deploy kustomization includes
// ../webhook), does in the copy what an operator does to move the install
// (edit the one `namespace:` line from -> to) and, with certManager, to
// have cert-manager keep the webhook's certificate (uncomment the one
// `components:` line), and returns its deploy directory.
func movedKustomization(t *testing.T, root, from, to string, certManager bool) string {
	t.Helper()
	tmp := t.TempDir()
	p := filepath.Join(tmp, "deploy", "kustomization.yaml")
	err := os.CopyFS(tmp, os.DirFS(filepath.Join(root, "manifests")))
	b, err2 := os.ReadFile(p)
	if err = errors.Join(err, err2); err != nil {
		t.Fatal(err)
	}
	line := "\nnamespace: " + from + "\n"
	if n := bytes.Count(b, []byte(line)); n != 1 {
		t.Fatalf("%s has %d lines %q, want 1", p, n, line)
	}
	b = bytes.Replace(b, []byte(line), []byte("\nnamespace: "+to+"\n"), 1)
	if certManager {
		const component = "\n# components: [../webhook/cert-manager]\n"
		if n := bytes.Count(b, []byte(component)); n != 1 {
			t.Fatalf("%s has %d lines %q, want 1", p, n, component)
		}
		b = bytes.Replace(b, []byte(component), []byte(strings.Replace(component, "# ", "", 1)), 1)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

// mentions reports a string in obj that names namespace ns as a whole DNS
// label or path segment (binderguard-webhook.<ns>.svc, <ns>/name, <ns>).
func mentions(obj any, ns string) (string, bool) {
	y, err := yaml.Marshal(obj)
	if err != nil {
		return err.Error(), true
	}
	re := regexp.MustCompile(`(^|[\s"'./:])` + regexp.QuoteMeta(ns) + `($|[\s"'./:])`)
	for line := range strings.Lines(string(y)) {
		if re.MatchString(line) {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}

// manifestDocs splits a multi-document YAML file (comment-only documents
// decode as empty).
func manifestDocs(b []byte) [][]byte { return bytes.Split(b, []byte("\n---")) }

func manifestKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// checkDeployment checks that the Deployment's flags parse, and that its
// ports, Services, RBAC and disruption budget agree with each other. It
// returns serve's flags as parsed.
func checkDeployment(t *testing.T, dep *appsv1.Deployment, ns string, objs map[string]any) serveConfig {
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

	// The bootstrap: the init container runs the image's entrypoint (the
	// binary; there is no shell) with flags that parse, it writes the file
	// Envoy reads into the volume both mount, and Envoy dials the xDS port
	// serve listens on.
	for _, c := range []corev1.Container{boot, bg} {
		if len(c.Command) != 0 {
			t.Errorf("container %s sets command %q: the image's entrypoint must run (args only)", c.Name, c.Command)
		}
	}
	if len(boot.Args) == 0 || boot.Args[0] != "bootstrap" {
		t.Fatalf("bootstrap runs %q", boot.Args)
	}
	var bootArgs []string
	var output, written string
	for _, a := range boot.Args[1:] {
		a = expand(a)
		if v, ok := strings.CutPrefix(a, "--output="); ok {
			output, written = v, filepath.Join(t.TempDir(), filepath.Base(v))
			a = "--output=" + written
		}
		bootArgs = append(bootArgs, a)
	}
	if i := slices.Index(envoy.Args, "--config-path"); output == "" || i < 0 || i+1 >= len(envoy.Args) || envoy.Args[i+1] != output {
		t.Errorf("bootstrap writes %q, envoy %q: they disagree on the bootstrap file", output, envoy.Args)
	}
	for _, a := range envoy.Args {
		if strings.HasPrefix(a, "-") && strings.Contains(a, "=") {
			t.Errorf("envoy arg %q: Envoy's command line rejects --flag=value", a)
		}
	}
	mountedAt := func(c corev1.Container, dir string) string {
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == dir {
				return vm.Name
			}
		}
		return ""
	}
	if v := mountedAt(boot, filepath.Dir(output)); v == "" || mountedAt(envoy, filepath.Dir(output)) != v {
		t.Errorf("bootstrap and envoy do not share a volume at %s", filepath.Dir(output))
	}
	var stdout bytes.Buffer
	if err := runBootstrap(context.Background(), bootArgs, &stdout); err != nil || stdout.Len() != 0 {
		t.Fatalf("bootstrap flags in the Deployment: %v (printed %q)", err, stdout.String())
	}
	boot1, err := os.ReadFile(written)
	if err != nil {
		t.Fatalf("bootstrap did not write its --output: %v", err)
	}
	if !bytes.Contains(boot1, []byte("port_value: "+strconv.Itoa(manifestPort(t, c.xdsAddr)))) {
		t.Errorf("the bootstrap does not dial serve's xDS port %s:\n%s", c.xdsAddr, boot1)
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
	return c
}

func manifestPort(t *testing.T, addr string) int {
	t.Helper()
	p, err := parseListenPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
