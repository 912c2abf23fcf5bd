package main

import (
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/webhook/certs"
)

// The cert-manager kinds, with just the fields the manifests use: decoding
// strictly into them catches a misspelt field as the scheme does for the
// built-in kinds.
type certIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned"`
	} `json:"spec"`
}

type certCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName string   `json:"secretName"`
		DNSNames   []string `json:"dnsNames"`
		IssuerRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"issuerRef"`
		PrivateKey struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
	} `json:"spec"`
}

// checkCertificates checks who keeps the webhook's serving certificate in
// a rendering for namespace ns: serve's --webhook-cert-mode (as parsed) is
// mode, the Secret it names is mounted at --cert-dir, and the certificate
// is for the webhook Service's names in ns. Self-signed: binderguard may
// write that one Secret and its own two webhook configurations and nothing
// more, and nothing of cert-manager's is rendered. External: cert-manager
// issues the Secret and injects the CA, and binderguard gets no such
// rights.
func checkCertificates(t *testing.T, dep *appsv1.Deployment, ns string, objs map[string]any, serve serveConfig, mode certs.Mode) {
	t.Helper()
	if serve.certMode != mode {
		t.Errorf("serve runs with --webhook-cert-mode=%s, want %s", serve.certMode, mode)
	}
	svc, ok := objs["Service/"+certs.ServiceName].(*corev1.Service)
	if !ok {
		t.Fatalf("no Service %s", certs.ServiceName)
	}
	wantDNS := []string{svc.Name + "." + ns + ".svc", svc.Name + "." + ns + ".svc.cluster.local"}
	whName := "binderguard-" + ns
	mwc, _ := objs["MutatingWebhookConfiguration/"+whName].(*admissionregistrationv1.MutatingWebhookConfiguration)
	vwc, _ := objs["ValidatingWebhookConfiguration/"+whName].(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if mwc == nil || vwc == nil {
		t.Fatalf("no webhook configurations %s among %v", whName, manifestKeys(objs))
	}
	annotations := map[string]map[string]string{"mutating": mwc.Annotations, "validating": vwc.Annotations}

	// The Secret the certificate is in is the one the pod mounts at
	// --cert-dir.
	pod := dep.Spec.Template.Spec
	var certDir string
	for _, c := range pod.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--cert-dir="); ok {
				certDir = v
			}
		}
	}
	mountsSecret := func(name string) bool {
		for _, v := range pod.Volumes {
			if v.Secret == nil || v.Secret.SecretName != name {
				continue
			}
			for _, c := range pod.Containers {
				for _, vm := range c.VolumeMounts {
					if vm.Name == v.Name && vm.MountPath == certDir {
						return true
					}
				}
			}
		}
		return false
	}

	switch mode {
	case certs.External:
		cert, ok := objs["Certificate/binderguard-webhook"].(*certCertificate)
		if !ok {
			t.Fatal("no Certificate binderguard-webhook")
		}
		if !slices.Equal(cert.Spec.DNSNames, wantDNS) {
			t.Errorf("certificate DNS names %v, want %v", cert.Spec.DNSNames, wantDNS)
		}
		if _, ok := objs[cert.Spec.IssuerRef.Kind+"/"+cert.Spec.IssuerRef.Name].(*certIssuer); !ok || cert.Spec.IssuerRef.Kind != "Issuer" {
			t.Errorf("the certificate's issuer %+v is not the Issuer shipped beside it", cert.Spec.IssuerRef)
		}
		if !mountsSecret(cert.Spec.SecretName) {
			t.Errorf("Secret %s is not mounted at --cert-dir %q", cert.Spec.SecretName, certDir)
		}
		wantCA := ns + "/" + cert.Name
		for which, a := range annotations {
			if got := a["cert-manager.io/inject-ca-from"]; got != wantCA {
				t.Errorf("%s inject-ca-from %q, want %q", which, got, wantCA)
			}
		}
		// cert-manager creates and owns the Secret; binderguard gets no
		// right to write it or the webhook configurations.
		for _, key := range []string{"Secret/" + certs.SecretName, "Role/binderguard-webhook-certs", "RoleBinding/binderguard-webhook-certs", "ClusterRole/" + whName, "ClusterRoleBinding/" + whName} {
			if objs[key] != nil {
				t.Errorf("%s is rendered with cert-manager keeping the certificate", key)
			}
		}

	case certs.SelfSigned:
		for _, key := range []string{"Certificate/binderguard-webhook", "Issuer/binderguard-selfsigned"} {
			if objs[key] != nil {
				t.Errorf("%s is rendered without cert-manager", key)
			}
		}
		for which, a := range annotations {
			if got, ok := a["cert-manager.io/inject-ca-from"]; ok {
				t.Errorf("%s webhook configuration asks cert-manager to inject %q without cert-manager", which, got)
			}
		}
		// What serve derives its names from agrees with the manifests.
		if serve.installNamespace != ns || certs.WebhookConfigurationName(ns) != whName || !slices.Equal(certs.DNSNames(ns), wantDNS) {
			t.Errorf("serve keeps the certificate of namespace %q for %s and %v, want %s, %s and %v",
				serve.installNamespace, certs.WebhookConfigurationName(serve.installNamespace), certs.DNSNames(serve.installNamespace), ns, whName, wantDNS)
		}
		// The rotator updates the Secret, it never creates it: shipped
		// empty, and mounted where serve looks.
		secret, ok := objs["Secret/"+certs.SecretName].(*corev1.Secret)
		if !ok {
			t.Fatalf("no Secret %s for the rotator to fill", certs.SecretName)
		}
		if secret.Type != corev1.SecretTypeOpaque || len(secret.Data)+len(secret.StringData) != 0 {
			t.Errorf("Secret %s: type %q with %d keys, want an empty Opaque Secret", secret.Name, secret.Type, len(secret.Data)+len(secret.StringData))
		}
		if !mountsSecret(certs.SecretName) || serve.certDir == "" {
			t.Errorf("Secret %s is not mounted at --cert-dir %q", certs.SecretName, certDir)
		}
		sa := dep.Spec.Template.Spec.ServiceAccountName
		boundTo := func(key string, subjects []rbacv1.Subject, roleRef rbacv1.RoleRef, role string) {
			if len(subjects) != 1 || subjects[0].Kind != "ServiceAccount" || subjects[0].Name != sa || subjects[0].Namespace != ns || roleRef.Name != role {
				t.Errorf("%s binds %+v to %s, want ServiceAccount %s/%s to %s", key, subjects, roleRef.Name, ns, sa, role)
			}
		}
		// Exactly the one Secret, by name.
		rb, ok := objs["RoleBinding/binderguard-webhook-certs"].(*rbacv1.RoleBinding)
		if !ok {
			t.Fatal("no RoleBinding binderguard-webhook-certs")
		}
		boundTo("RoleBinding/"+rb.Name, rb.Subjects, rb.RoleRef, "binderguard-webhook-certs")
		role, ok := objs["Role/binderguard-webhook-certs"].(*rbacv1.Role)
		if !ok {
			t.Fatal("no Role binderguard-webhook-certs")
		}
		checkRules(t, "Role/"+role.Name, role.Rules, rbacv1.PolicyRule{
			APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{certs.SecretName},
			Verbs: []string{"get", "list", "watch", "update"},
		})
		// Exactly this install's two webhook configurations, by name,
		// granted by a ClusterRole named after the namespace.
		crb, ok := objs["ClusterRoleBinding/"+whName].(*rbacv1.ClusterRoleBinding)
		if !ok {
			t.Fatalf("no ClusterRoleBinding %s", whName)
		}
		boundTo("ClusterRoleBinding/"+crb.Name, crb.Subjects, crb.RoleRef, whName)
		if crb.RoleRef.Kind != "ClusterRole" {
			t.Errorf("ClusterRoleBinding %s refers to a %s", crb.Name, crb.RoleRef.Kind)
		}
		cr, ok := objs["ClusterRole/"+whName].(*rbacv1.ClusterRole)
		if !ok {
			t.Fatalf("no ClusterRole %s", whName)
		}
		checkRules(t, "ClusterRole/"+cr.Name, cr.Rules, rbacv1.PolicyRule{
			APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"},
			ResourceNames: []string{whName}, Verbs: []string{"get", "list", "watch", "update"},
		})
	}
}

// checkRules checks that rules are exactly want: one rule, restricted to
// its resource names.
func checkRules(t *testing.T, what string, rules []rbacv1.PolicyRule, want rbacv1.PolicyRule) {
	t.Helper()
	sorted := func(r rbacv1.PolicyRule) rbacv1.PolicyRule {
		for _, l := range [][]string{r.APIGroups, r.Resources, r.ResourceNames, r.Verbs} {
			slices.Sort(l)
		}
		return r
	}
	if len(rules) != 1 {
		t.Errorf("%s has %d rules, want 1: %+v", what, len(rules), rules)
		return
	}
	got, want := sorted(*rules[0].DeepCopy()), sorted(*want.DeepCopy())
	if !slices.Equal(got.APIGroups, want.APIGroups) || !slices.Equal(got.Resources, want.Resources) ||
		!slices.Equal(got.ResourceNames, want.ResourceNames) || !slices.Equal(got.Verbs, want.Verbs) || len(got.NonResourceURLs) != 0 {
		t.Errorf("%s allows %+v, want exactly %+v", what, got, want)
	}
}
