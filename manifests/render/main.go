// Command render writes what is derived from the Helm chart
// (manifests/chart) and what the chart copies from elsewhere, so that each
// has one source (`make manifests` runs it; TestRenderedFilesAreCurrent
// fails on drift):
//
//   - the kustomize base for installs without Helm (manifests/deploy,
//     manifests/webhook and its cert-manager component's certificate.yaml):
//     `helm template` of one chart template each, for the namespace
//     binderhub that those kustomizations rewrite, without Helm's own
//     labels. The kustomization.yaml files (namespace, replacements, the
//     component's patches) are kept by hand; TestKustomizeMatchesChart
//     checks that what they build equals the chart's rendering;
//   - the chart's crds/ (controller-gen writes manifests/crds) and
//     files/binderguard.rules.yaml (from manifests/alerts, where promtool
//     tests it): Helm reads only files inside the chart.
//
// It runs the helm binary (.tools/bin/helm, `make tools`) and never
// changes a file outside those outputs.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Namespace the kustomize base is rendered for: the value its
// kustomization.yaml carries and rewrites everywhere.
const Namespace = "binderhub"

// output is one rendered kustomize file: the chart template it comes from
// and the values it is rendered with.
type output struct {
	path     string // relative to manifests/
	template string // relative to manifests/chart
	set      []string
}

var outputs = []output{
	{path: "deploy/rbac.yaml", template: "templates/rbac.yaml"},
	{path: "deploy/deployment.yaml", template: "templates/deployment.yaml"},
	{path: "deploy/services.yaml", template: "templates/services.yaml"},
	{path: "deploy/pdb.yaml", template: "templates/pdb.yaml"},
	{path: "deploy/networkpolicy.yaml", template: "templates/networkpolicy.yaml"},
	{path: "webhook/webhook.yaml", template: "templates/webhook.yaml"},
	{path: "webhook/self-signed.yaml", template: "templates/webhook-self-signed.yaml"},
	{path: "webhook/cert-manager/certificate.yaml", template: "templates/webhook-cert-manager.yaml", set: []string{"webhook.certificate.mode=cert-manager"}},
}

// copies are files the chart carries verbatim: chart path <- source path,
// relative to manifests/.
var copies = map[string]string{
	"chart/files/binderguard.rules.yaml": "alerts/binderguard.rules.yaml",
}

func main() {
	root := flag.String("root", ".", "the repository's root")
	helm := flag.String("helm", ".tools/bin/helm", "the helm binary (make tools installs it)")
	flag.Parse()
	files, err := Render(context.Background(), *root, *helm)
	if err == nil {
		err = write(*root, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// Render returns every derived file's content by path relative to
// manifests/.
func Render(ctx context.Context, root, helm string) (map[string][]byte, error) {
	manifests := filepath.Join(root, "manifests")
	files := map[string][]byte{}
	var errs []error
	for _, o := range outputs {
		b, err := Template(ctx, helm, filepath.Join(manifests, "chart"), Namespace, append([]string{"--show-only", o.template}, setFlags(o.set)...)...)
		if err != nil {
			errs = append(errs, fmt.Errorf("rendering %s: %w", o.path, err))
			continue
		}
		files[o.path] = kustomizeBase(o, b)
	}
	for dst, src := range copies {
		b, err := os.ReadFile(filepath.Join(manifests, src))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files[dst] = b
	}
	crds, err := filepath.Glob(filepath.Join(manifests, "crds", "*.yaml"))
	if err == nil && len(crds) == 0 {
		err = errors.New("no CRDs in manifests/crds (make manifests runs controller-gen first)")
	}
	errs = append(errs, err)
	for _, p := range crds {
		b, err := os.ReadFile(p)
		errs = append(errs, err)
		files[filepath.Join("chart", "crds", filepath.Base(p))] = b
	}
	return files, errors.Join(errs...)
}

// Stale lists derived files on disk that Render no longer writes (a CRD
// removed from the Go types), relative to manifests/.
func Stale(root string, files map[string][]byte) ([]string, error) {
	on, err := filepath.Glob(filepath.Join(root, "manifests", "chart", "crds", "*"))
	var stale []string
	for _, p := range on {
		rel, _ := filepath.Rel(filepath.Join(root, "manifests"), p)
		if _, ok := files[rel]; !ok {
			stale = append(stale, rel)
		}
	}
	return stale, err
}

func write(root string, files map[string][]byte) error {
	stale, err := Stale(root, files)
	if err != nil {
		return err
	}
	for _, rel := range stale {
		if err := os.Remove(filepath.Join(root, "manifests", rel)); err != nil {
			return err
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(root, "manifests", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[rel], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func setFlags(set []string) []string {
	var out []string
	for _, s := range set {
		out = append(out, "--set", s)
	}
	return out
}

// Template runs `helm template binderguard <chart> --namespace ns args...`
// and returns its standard output; a failure carries helm's message.
func Template(ctx context.Context, helm, chart, ns string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, helm, append([]string{"template", "binderguard", chart, "--namespace", ns}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// helmOnly are the label lines the chart adds for Helm (its labels helper
// keeps each on a line of its own): a kustomize install is not managed by
// Helm, and its kustomization adds app.kubernetes.io/part-of instead.
var helmOnly = regexp.MustCompile(`(?m)^\s+(helm\.sh/chart|app\.kubernetes\.io/managed-by|app\.kubernetes\.io/instance): .*\n`)

// sourceLine is helm template's "# Source: chart/templates/x.yaml" line,
// and the document separator before the first document.
var sourceLine = regexp.MustCompile(`(?m)^# Source: .*\n`)

func kustomizeBase(o output, rendered []byte) []byte {
	b := helmOnly.ReplaceAll(rendered, nil)
	b = sourceLine.ReplaceAll(b, nil)
	b = bytes.TrimPrefix(b, []byte("---\n"))
	how := "helm template --namespace " + Namespace + " --show-only " + o.template
	for _, v := range o.set {
		how += " --set " + v
	}
	header := "# Rendered by `make manifests` from the Helm chart, manifests/chart/" + o.template + "\n" +
		"# (" + how + "),\n" +
		"# without Helm's labels. Edit the chart, never this file: a test fails when\n" +
		"# they differ. kustomize rewrites the namespace " + Namespace + " below to the one\n" +
		"# set in manifests/deploy/kustomization.yaml.\n"
	return append([]byte(header), b...)
}
