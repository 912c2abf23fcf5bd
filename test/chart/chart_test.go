package chart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// variant is one set of values the chart is rendered, linted and dry-run
// with, and what its rendering must hold.
type variant struct {
	values      string   // YAML, as an operator's values file
	apiVersions []string // what the cluster serves beyond the built-in APIs
	check       func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured)
}

// The objects every rendering has, whatever the values.
var always = []string{
	"ServiceAccount/binderguard", "Role/binderguard", "RoleBinding/binderguard", "Deployment/binderguard",
	"Service/binderguard", "Service/binderguard-gate", "PodDisruptionBudget/binderguard", "NetworkPolicy/binderguard",
}

func kinds(objs map[string]*unstructured.Unstructured) []string {
	var ks []string
	for k := range objs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func wantObjects(t *testing.T, objs map[string]*unstructured.Unstructured, want ...string) {
	t.Helper()
	want = append(slices.Clone(always), want...)
	slices.Sort(want)
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Errorf("rendered %v\nwant     %v", got, want)
	}
}

func serveArgs(t *testing.T, objs map[string]*unstructured.Unstructured) []string {
	t.Helper()
	return args(container(t, objs["Deployment/binderguard"], "binderguard"))
}

func hasArg(list []string, a string) bool { return slices.Contains(list, a) }

// caBundle is a real CA certificate, base64 PEM, as an operator with their
// own certificate puts in webhook.certificate.caBundle.
func caBundle(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func variants(t *testing.T) map[string]variant {
	webhookObjects := []string{"Service/binderguard-webhook"}
	selfSigned := []string{"Secret/binderguard-webhook-tls", "Role/binderguard-webhook-certs", "RoleBinding/binderguard-webhook-certs"}
	cluster := func(ns string, kinds ...string) []string {
		var out []string
		for _, k := range kinds {
			out = append(out, k+"/binderguard-"+ns)
		}
		return out
	}
	ca := caBundle(t)
	return map[string]variant{
		"the defaults: binderguard keeps its webhook certificate, no Ingress, no monitoring objects without their CRDs": {
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				wantObjects(t, objs, slices.Concat(webhookObjects, selfSigned,
					cluster(ns, "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"))...)
				a := serveArgs(t, objs)
				for _, want := range []string{"--upstream=http://binder.$(POD_NAMESPACE).svc", "--cert-dir=/etc/binderguard/webhook-certs", "--webhook-port=9443"} {
					if !hasArg(a, want) {
						t.Errorf("serve args %q lack %q", a, want)
					}
				}
				if slices.ContainsFunc(a, func(s string) bool {
					return strings.HasPrefix(s, "--webhook-cert-mode") || strings.HasPrefix(s, "--webhook=")
				}) {
					t.Errorf("serve args %q: the default is the self-signed webhook", a)
				}
				if slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "--cors-allow-origin") }) {
					t.Errorf("serve args %q: no CORS origin by default, as BinderHub", a)
				}
				dep := objs["Deployment/binderguard"]
				if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 2 {
					t.Errorf("replicas %d, want 2", r)
				}
				if img := container(t, dep, "envoy")["image"]; img != "envoyproxy/envoy:v1.40.0" {
					t.Errorf("envoy image %v", img)
				}
				if img := container(t, dep, "binderguard")["image"]; img != "ghcr.io/binderguard/binderguard:v0.1.0" {
					t.Errorf("binderguard image %v, want the chart's appVersion", img)
				}
				v := objs["ValidatingWebhookConfiguration/binderguard-"+ns]
				hooks, _, _ := unstructured.NestedSlice(v.Object, "webhooks")
				if fp := hooks[0].(map[string]any)["failurePolicy"]; fp != "Fail" {
					t.Errorf("validating failurePolicy %v, want Fail", fp)
				}
				if got := hooks[0].(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any)["namespace"]; got != ns {
					t.Errorf("webhook calls the Service in namespace %v, want %s", got, ns)
				}
			},
		},
		"webhook off: no webhook configurations, Service or certificate, and serve runs without them": {
			values: "webhook: {enabled: false}\n",
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				wantObjects(t, objs)
				a := serveArgs(t, objs)
				if !hasArg(a, "--webhook=false") || slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "--cert-dir") }) {
					t.Errorf("serve args %q, want --webhook=false and no --cert-dir", a)
				}
				if vols, _, _ := unstructured.NestedSlice(objs["Deployment/binderguard"].Object, "spec", "template", "spec", "volumes"); len(vols) != 1 {
					t.Errorf("volumes %v, want only Envoy's config", vols)
				}
			},
		},
		"cert-manager: it issues the certificate and injects the CA; binderguard only serves it": {
			values: "webhook: {certificate: {mode: cert-manager}}\n",
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				wantObjects(t, objs, slices.Concat(webhookObjects, []string{"Issuer/binderguard-selfsigned", "Certificate/binderguard-webhook"},
					cluster(ns, "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"))...)
				if !hasArg(serveArgs(t, objs), "--webhook-cert-mode=external") {
					t.Errorf("serve args %q lack --webhook-cert-mode=external", serveArgs(t, objs))
				}
				for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
					if got := objs[kind+"/binderguard-"+ns].GetAnnotations()["cert-manager.io/inject-ca-from"]; got != ns+"/binderguard-webhook" {
						t.Errorf("%s inject-ca-from %q", kind, got)
					}
				}
				dns, _, _ := unstructured.NestedStringSlice(objs["Certificate/binderguard-webhook"].Object, "spec", "dnsNames")
				if !slices.Contains(dns, "binderguard-webhook."+ns+".svc") {
					t.Errorf("certificate DNS names %v", dns)
				}
			},
		},
		"cert-manager with the cluster's own issuer: the chart makes none": {
			values: "webhook: {certificate: {mode: cert-manager, certManager: {issuerRef: {name: cluster-ca, kind: ClusterIssuer}}}}\n",
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				wantObjects(t, objs, slices.Concat(webhookObjects, []string{"Certificate/binderguard-webhook"},
					cluster(ns, "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"))...)
				if got := str(objs["Certificate/binderguard-webhook"], "spec", "issuerRef", "name"); got != "cluster-ca" {
					t.Errorf("issuerRef name %q", got)
				}
			},
		},
		"an external certificate: its CA in both webhooks, failure policies and timeout from values": {
			values: "webhook:\n  certificate: {mode: external, caBundle: " + ca + "}\n  failurePolicy: {validating: Ignore, mutating: Fail}\n  timeoutSeconds: 10\n",
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				wantObjects(t, objs, slices.Concat(webhookObjects, cluster(ns, "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"))...)
				for kind, fp := range map[string]string{"MutatingWebhookConfiguration": "Fail", "ValidatingWebhookConfiguration": "Ignore"} {
					hooks, _, _ := unstructured.NestedSlice(objs[kind+"/binderguard-"+ns].Object, "webhooks")
					h := hooks[0].(map[string]any)
					if h["clientConfig"].(map[string]any)["caBundle"] != ca || h["failurePolicy"] != fp || h["timeoutSeconds"] != int64(10) {
						t.Errorf("%s: caBundle set %t, failurePolicy %v, timeout %v", kind, h["clientConfig"].(map[string]any)["caBundle"] == ca, h["failurePolicy"], h["timeoutSeconds"])
					}
				}
				if !hasArg(serveArgs(t, objs), "--webhook-cert-mode=external") {
					t.Errorf("serve args %q", serveArgs(t, objs))
				}
			},
		},
		"with the prometheus-operator CRDs: a PodMonitor and the alert rules as a PrometheusRule": {
			values:      "metrics: {podMonitor: {labels: {release: kube-prometheus}, interval: 15s}}\n",
			apiVersions: []string{"monitoring.coreos.com/v1"},
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				pm, rule := objs["PodMonitor/binderguard"], objs["PrometheusRule/binderguard"]
				if pm == nil || rule == nil {
					t.Fatalf("rendered %v, want a PodMonitor and a PrometheusRule", kinds(objs))
				}
				if pm.GetLabels()["release"] != "kube-prometheus" {
					t.Errorf("PodMonitor labels %v", pm.GetLabels())
				}
				eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
				var jobs []string
				for _, e := range eps {
					m := e.(map[string]any)
					jobs = append(jobs, m["port"].(string)+"="+m["relabelings"].([]any)[0].(map[string]any)["replacement"].(string))
					if m["interval"] != "15s" {
						t.Errorf("endpoint %v interval %v", m["port"], m["interval"])
					}
				}
				if !slices.Equal(jobs, []string{"metrics=binderguard", "envoy-stats=binderguard-envoy"}) {
					t.Errorf("scraped ports and jobs %v", jobs)
				}
				// The rules are exactly manifests/alerts' (tested there by promtool).
				b, err := os.ReadFile(filepath.Join(newRepo(t).root, "manifests", "alerts", "binderguard.rules.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				var file map[string]any
				if err := yaml.Unmarshal(b, &file); err != nil {
					t.Fatal(err)
				}
				groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
				want, _ := yaml.Marshal(file["groups"])
				got, _ := yaml.Marshal(groups)
				if string(got) != string(want) || len(groups) == 0 {
					t.Errorf("PrometheusRule groups differ from manifests/alerts/binderguard.rules.yaml:\n%s", got)
				}
			},
		},
		"BinderHub's Service, replicas, resources and images from values": {
			values: `binderhub: {service: {name: hub, port: 8080}}
replicas: 3
resources: {requests: {cpu: "1", memory: 1Gi}, limits: {memory: 2Gi}}
image: {repository: registry.example/binderguard, tag: v9.9.9}
envoy: {image: {repository: registry.example/envoy, tag: v1.40.1}, resources: {requests: {cpu: 500m}}}
podDisruptionBudget: {minAvailable: 2}
networkPolicy: {enabled: false}
extraProviders: [custom, my.forge]
corsAllowOrigin: '*'
`,
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				dep := objs["Deployment/binderguard"]
				if !hasArg(serveArgs(t, objs), "--extra-providers=custom,my.forge") {
					t.Errorf("serve args %q, want the extra providers", serveArgs(t, objs))
				}
				if !hasArg(serveArgs(t, objs), "--cors-allow-origin=*") {
					t.Errorf("serve args %q, want the CORS origin", serveArgs(t, objs))
				}
				if !hasArg(serveArgs(t, objs), "--upstream=http://hub.$(POD_NAMESPACE).svc:8080") {
					t.Errorf("serve args %q, want the upstream hub:8080", serveArgs(t, objs))
				}
				if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 3 {
					t.Errorf("replicas %d", r)
				}
				bg, envoy, boot := container(t, dep, "binderguard"), container(t, dep, "envoy"), container(t, dep, "bootstrap")
				if bg["image"] != "registry.example/binderguard:v9.9.9" || boot["image"] != bg["image"] || envoy["image"] != "registry.example/envoy:v1.40.1" {
					t.Errorf("images %v %v %v", bg["image"], boot["image"], envoy["image"])
				}
				if cpu, _, _ := unstructured.NestedString(bg, "resources", "requests", "cpu"); cpu != "1" {
					t.Errorf("binderguard resources %v", bg["resources"])
				}
				if cpu, _, _ := unstructured.NestedString(envoy, "resources", "requests", "cpu"); cpu != "500m" {
					t.Errorf("envoy resources %v", envoy["resources"])
				}
				if _, ok := objs["NetworkPolicy/binderguard"]; ok {
					t.Error("NetworkPolicy rendered with networkPolicy.enabled false")
				}
				if m, _, _ := unstructured.NestedInt64(objs["PodDisruptionBudget/binderguard"].Object, "spec", "minAvailable"); m != 2 {
					t.Errorf("minAvailable %d", m)
				}
			},
		},
		"RepoBans and LaunchPolicies from values": {
			values: `repoBans:
  jupyterlab-demo-2018:
    repos: [gh/jupyterlab/jupyterlab-demo]
    message: jupyterlab-demo is paused to keep the site up; please try again in an hour.
    mode: Enforce
  miners:
    patterns: [{regex: ".*xmrig.*"}]
    mode: Enforce
    onExisting: Delete
launchPolicies:
  default:
    build:
      resources: {requests: {cpu: 100m, memory: 64M}, limits: {cpu: 500m, memory: 128M}}
      activeDeadlineSeconds: 600
  popular-repos:
    selector: {repos: [gh/jupyterlab/jupyterlab-demo]}
    collapse: {maxWaiters: 1000, holdTimeout: 20m, releaseRate: "10", releaseBurst: 10}
    breaker: {consecutiveFailures: 2, openDuration: 10m, maxBuildDuration: 30m}
`,
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				for _, k := range []string{"RepoBan/jupyterlab-demo-2018", "RepoBan/miners", "LaunchPolicy/default", "LaunchPolicy/popular-repos"} {
					if objs[k] == nil {
						t.Errorf("no %s among %v", k, kinds(objs))
					}
				}
				if got := str(objs["RepoBan/miners"], "spec", "onExisting"); got != "Delete" {
					t.Errorf("RepoBan miners onExisting %q", got)
				}
			},
		},
		"an Ingress like BinderHub's, to binderguard": {
			values: `ingress:
  enabled: true
  ingressClassName: nginx
  annotations: {cert-manager.io/cluster-issuer: letsencrypt}
  hosts: [mybinder.example, gke.mybinder.example]
  tls: [{hosts: [mybinder.example, gke.mybinder.example], secretName: binder-tls}]
`,
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				ing := objs["Ingress/binderguard"]
				if ing == nil {
					t.Fatalf("no Ingress among %v", kinds(objs))
				}
				rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
				if len(rules) != 2 {
					t.Fatalf("%d rules, want one per host", len(rules))
				}
				for _, r := range rules {
					b, _, _ := unstructured.NestedMap(r.(map[string]any), "http")
					svc := b["paths"].([]any)[0].(map[string]any)["backend"].(map[string]any)["service"].(map[string]any)
					if svc["name"] != "binderguard" || svc["port"].(map[string]any)["number"] != int64(80) {
						t.Errorf("rule %v backend %v, want binderguard:80", r.(map[string]any)["host"], svc)
					}
				}
				if str(ing, "spec", "ingressClassName") != "nginx" || ing.GetAnnotations()["cert-manager.io/cluster-issuer"] != "letsencrypt" {
					t.Errorf("Ingress class %q annotations %v", str(ing, "spec", "ingressClassName"), ing.GetAnnotations())
				}
			},
		},
		"an HTTPRoute like BinderHub's, to binderguard": {
			values: `httpRoute:
  enabled: true
  hostnames: [mybinder.example]
  parentRefs: [{name: public, namespace: gateways, sectionName: https}]
`,
			apiVersions: []string{"gateway.networking.k8s.io/v1"},
			check: func(t *testing.T, ns string, objs map[string]*unstructured.Unstructured) {
				r := objs["HTTPRoute/binderguard"]
				if r == nil {
					t.Fatalf("no HTTPRoute among %v", kinds(objs))
				}
				rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
				ref := rules[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any)
				if ref["name"] != "binderguard" || ref["port"] != int64(80) {
					t.Errorf("backendRef %v, want binderguard:80", ref)
				}
			},
		},
	}
}

// helm template with each variant's values renders what it must.
func TestTemplate(t *testing.T) {
	r := newRepo(t)
	for name, v := range variants(t) {
		t.Run(name, func(t *testing.T) {
			const ns = "binderhub"
			var flags []string
			if v.values != "" {
				flags = valuesFile(t, v.values)
			}
			for _, a := range v.apiVersions {
				flags = append(flags, "--api-versions", a)
			}
			objs := index(r.template(t, ns, flags...))
			for k, o := range objs {
				if o.GetNamespace() != "" {
					t.Errorf("%s sets namespace %q: the release's is used", k, o.GetNamespace())
				}
				if o.GetLabels()["app.kubernetes.io/name"] != "binderguard" || o.GetLabels()["app.kubernetes.io/instance"] != "binderguard" {
					t.Errorf("%s labels %v", k, o.GetLabels())
				}
			}
			v.check(t, ns, objs)
		})
	}
}

// helm lint --strict passes with each variant's values.
func TestLint(t *testing.T) {
	r := newRepo(t)
	for name, v := range variants(t) {
		t.Run(name, func(t *testing.T) {
			flags := []string{"lint", "--strict", r.chart, "--namespace", "binderhub"}
			if v.values != "" {
				flags = append(flags, valuesFile(t, v.values)...)
			}
			out, err := r.run(t.Context(), flags...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint: %s", out)
			}
		})
	}
}

// Values that cannot work fail the rendering with a message that names
// the value and says what it wants.
func TestBadValuesFailWithAClearMessage(t *testing.T) {
	r := newRepo(t)
	for name, tc := range map[string]struct{ values, want string }{
		"an unknown certificate mode":                  {"webhook: {certificate: {mode: vault}}\n", "/webhook/certificate/mode': value must be one of 'self-signed', 'cert-manager', 'external'"},
		"an external certificate without its CA":       {"webhook: {certificate: {mode: external}}\n", "webhook.certificate.mode external needs webhook.certificate.caBundle"},
		"an HTTPRoute without a Gateway":               {"httpRoute: {enabled: true, hostnames: [x.example]}\n", "httpRoute.enabled needs httpRoute.parentRefs"},
		"a misspelt value":                             {"replica: 3\n", "additional properties 'replica' not allowed"},
		"a failure policy Kubernetes does not know":    {"webhook: {failurePolicy: {validating: Sometimes}}\n", "/webhook/failurePolicy/validating': value must be one of 'Fail', 'Ignore'"},
		"a policy name Kubernetes refuses":             {"repoBans: {Evil_Miners: {repos: [gh/evil/miner]}}\n", "invalid propertyName 'Evil_Miners'"},
		"an extra provider that is not a path segment": {"extraProviders: [a/b]\n", "/extraProviders/0"},
		"a CORS origin that is no header value":        {"corsAllowOrigin: \"* \"\n", "/corsAllowOrigin"},
		"BinderHub's port out of range":                {"binderhub: {service: {port: 0}}\n", "/binderhub/service/port"},
		"a cert-manager issuer of an unknown kind":     {"webhook: {certificate: {mode: cert-manager, certManager: {issuerRef: {name: x, kind: Vault}}}}\n", "/webhook/certificate/certManager/issuerRef/kind"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.run(t.Context(), append([]string{"template", "binderguard", r.chart, "--namespace", "binderhub"}, valuesFile(t, tc.values)...)...)
			if err == nil {
				t.Fatalf("rendered with %q, want an error", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to say %q", err, tc.want)
			}
		})
	}
}
