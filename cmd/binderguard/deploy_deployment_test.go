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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/peers"
)

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
	// The gates come from the headless Service's EndpointSlices (EDS),
	// on its port named gate, which must be the gate container port.
	if svc, ok := objs["Service/"+c.gateService].(*corev1.Service); !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("--gate-service %q is not a headless Service of the manifests", c.gateService)
	} else if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == peers.PortName && p.TargetPort.StrVal == "gate"
	}) {
		t.Errorf("Service %s has no port %q targeting the gate container port: %+v", c.gateService, peers.PortName, svc.Spec.Ports)
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
	// Envoy starts once its /ready, on the stats listener the bootstrap
	// writes, reaches a gate.
	if p := envoy.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != bootstrap.ReadyPath ||
		!slices.Contains(boot.Args, "--stats=0.0.0.0:"+strconv.Itoa(port(envoy, p.HTTPGet.Port.StrVal))) {
		t.Errorf("envoy startup probe %+v, want %s on the bootstrap's stats listener (%q)", p, bootstrap.ReadyPath, boot.Args)
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
