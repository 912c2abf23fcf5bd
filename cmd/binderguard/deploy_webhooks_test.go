package main

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/binderguard/binderguard/webhook/admission"
)

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
