package testenv

import (
	"context"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

func TestAssetsDirFailsWithInstructionsWhenBinariesAreMissing(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	t.Setenv("TEST_ASSET_KUBE_APISERVER", "")
	t.Setenv("TEST_ASSET_ETCD", "")
	_, err := assetsDir("/nonexistent")
	if err == nil || !strings.Contains(err.Error(), "run make tools") {
		t.Fatalf("assetsDir with no binaries: got %v, want an error saying to run make tools", err)
	}
}

func TestStartInstallsTheCRDs(t *testing.T) {
	env := Start(t, WithScheme(apiextensionsv1.AddToScheme))
	ctx := context.Background()
	for _, name := range []string{"repobans.binderguard.io", "launchpolicies.binderguard.io"} {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Errorf("get CRD %s: %v", name, err)
		}
	}
	ns := env.Namespace(t)
	var bans v1alpha1.RepoBanList
	if err := env.Client.List(ctx, &bans, client.InNamespace(ns)); err != nil {
		t.Fatalf("list RepoBans in a fresh namespace: %v", err)
	}
	if len(bans.Items) != 0 {
		t.Errorf("fresh namespace has %d RepoBans, want 0", len(bans.Items))
	}
}
