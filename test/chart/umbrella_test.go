package chart

import (
	"os"
	"path/filepath"
	"testing"
)

// The chart works as a dependency of an umbrella chart, as mybinder.org's
// deploys BinderHub: its values under the `binderguard:` key, switched by
// the usual `binderguard.enabled` condition, in the umbrella's namespace.
func TestAsADependencyOfAnUmbrellaChart(t *testing.T) {
	r := newRepo(t)
	dir := filepath.Join(t.TempDir(), "mybinder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chartYAML := `apiVersion: v2
name: mybinder
version: 0.0.1
dependencies:
  - name: binderguard
    version: 0.1.0
    repository: file://` + r.chart + `
    condition: binderguard.enabled
`
	values := `binderguard:
  enabled: true
  binderhub: {service: {name: binder, port: 80}}
  ingress: {enabled: true, ingressClassName: nginx, hosts: [mybinder.example]}
  repoBans:
    crypto-miners: {repos: [gh/evil/miner], mode: Enforce}
`
	for name, content := range map[string]string{"Chart.yaml": chartYAML, "values.yaml": values} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.run(t.Context(), "dependency", "build", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := r.run(t.Context(), "lint", "--strict", dir); err != nil {
		t.Fatal(err)
	}
	render := func(t *testing.T, args ...string) map[string]bool {
		out, err := r.run(t.Context(), append([]string{"template", "prod", dir, "--namespace", "mybinder"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, o := range decode(t, out) {
			got[o.GetKind()+"/"+o.GetName()] = true
		}
		return got
	}
	t.Run("enabled: binderguard with its Ingress and policies, webhooks named after the umbrella's namespace", func(t *testing.T) {
		got := render(t)
		for _, k := range []string{"Deployment/binderguard", "Ingress/binderguard", "RepoBan/crypto-miners", "ValidatingWebhookConfiguration/binderguard-mybinder"} {
			if !got[k] {
				t.Errorf("no %s in %v", k, got)
			}
		}
	})
	t.Run("disabled by the condition: nothing of binderguard", func(t *testing.T) {
		if got := render(t, "--set", "binderguard.enabled=false"); len(got) != 0 {
			t.Errorf("rendered %v", got)
		}
	})
	t.Run("the subchart's schema still refuses bad values", func(t *testing.T) {
		if _, err := r.run(t.Context(), "template", "prod", dir, "--set", "binderguard.webhook.certificate.mode=vault"); err == nil {
			t.Error("rendered with binderguard.webhook.certificate.mode=vault")
		}
	})
}
