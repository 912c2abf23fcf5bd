package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/test/testenv"
)

// crdModules are the Go modules whose CRD YAML the dry run installs for the
// kinds the chart renders beyond its own: Gateway API's HTTPRoute and
// cert-manager's Issuer and Certificate. The prometheus-operator's
// (PodMonitor, PrometheusRule) are in testdata/crds (generate.sh says why
// and how).
var crdModules = map[string][]string{
	"sigs.k8s.io/gateway-api@v1.6.3":               {"config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"},
	"github.com/cert-manager/cert-manager@v1.21.2": {"deploy/crds/cert-manager.io_issuers.yaml", "deploy/crds/cert-manager.io_certificates.yaml"},
}

// crdFiles downloads the modules (from the module cache when there) and
// returns the CRD files to install.
func crdFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join("testdata", "crds", "monitoring.coreos.com_podmonitors.yaml"), filepath.Join("testdata", "crds", "monitoring.coreos.com_prometheusrules.yaml")}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var mods []string
	for m := range crdModules {
		mods = append(mods, m)
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"mod", "download", "-json"}, mods...)...)
	cmd.Dir = t.TempDir() // outside binderguard's module: go.mod stays as it is
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %v: %v\n%s%s", mods, err, stderr.Bytes(), out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m struct{ Path, Version, Dir, Error string }
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if m.Error != "" || m.Dir == "" {
			t.Fatalf("go mod download %s@%s: %s", m.Path, m.Version, m.Error)
		}
		for _, f := range crdModules[m.Path+"@"+m.Version] {
			files = append(files, filepath.Join(m.Dir, f))
		}
	}
	if len(files) != 5 {
		t.Fatalf("CRD files %v, want 5", files)
	}
	return files
}

// Every variant's rendering is accepted by a real kube-apiserver, as helm
// install would create it (a server-side dry run, dryRun: All, strict
// field validation): schemas, CEL rules of binderguard's CRDs, the webhook
// configurations' match conditions, RBAC, Gateway API, cert-manager and
// prometheus-operator objects. And one the API server must refuse is
// refused, so the dry run is not a formality.
func TestDryRunAgainstAPIServer(t *testing.T) {
	r := newRepo(t)
	env := testenv.Start(t, testenv.WithCRDPaths(crdFiles(t)...))
	dryRun := func(t *testing.T, ns string, flags ...string) error {
		var errs []error
		objs := r.template(t, ns, flags...)
		if len(objs) < len(always) {
			t.Fatalf("rendered %d objects", len(objs))
		}
		for _, o := range objs {
			namespaced, err := env.Client.IsObjectNamespaced(o)
			if err != nil {
				t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
			}
			if namespaced {
				o.SetNamespace(ns)
			}
			if err := env.Client.Create(t.Context(), o, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				errs = append(errs, err)
				continue
			}
			// A dry run stores nothing.
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(o), got); !apierrors.IsNotFound(err) {
				t.Errorf("%s %s exists after a dry run (%v)", o.GetKind(), o.GetName(), err)
			}
		}
		return errors.Join(errs...)
	}
	for name, v := range variants(t) {
		t.Run(name, func(t *testing.T) {
			var flags []string
			if v.values != "" {
				flags = valuesFile(t, v.values)
			}
			for _, a := range v.apiVersions {
				flags = append(flags, "--api-versions", a)
			}
			if err := dryRun(t, env.Namespace(t), flags...); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("a RepoBan the CRD refuses is refused", func(t *testing.T) {
		err := dryRun(t, env.Namespace(t), valuesFile(t, "repoBans: {bad: {repos: [gh/evil/miner], mode: Sometimes}}\n")...)
		if err == nil || !strings.Contains(err.Error(), "spec.mode") {
			t.Errorf("dry run: %v, want the API server to refuse spec.mode", err)
		}
	})
}
