package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/test/testenv"
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
