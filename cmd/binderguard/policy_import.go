package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/importer"
)

// runPolicyImport prints RepoBan YAML for the banned_specs in BinderHub
// helm values (the binderhub chart's `config:`, or `binderhub: config:` in
// an umbrella chart such as mybinder.org-deploy's).
func runPolicyImport(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy import", flag.ContinueOnError)
	path := fs.String("binderhub-config", "", "BinderHub helm values file (required)")
	ns := fs.String("namespace", "", "namespace for the RepoBan (default: none, kubectl's current)")
	name := fs.String("name", "binderhub-banned-specs", "name of the RepoBan (suffixed -2, -3 ... past 256 patterns)")
	if err := parseFlags(fs, args, stdout, printPolicyUsage); err != nil {
		return err
	}
	if *path == "" {
		return usageErr("--binderhub-config values.yaml is required")
	}
	// What the API server would refuse is refused here, not printed:
	// the name takes a -N suffix past 256 patterns.
	if errs := validation.IsDNS1123Subdomain(*name + "-99"); len(errs) > 0 {
		return usageErr("--name %q: not a Kubernetes object name: %s", *name, strings.Join(errs, "; "))
	}
	if *ns != "" {
		if errs := validation.IsDNS1123Label(*ns); len(errs) > 0 {
			return usageErr("--namespace %q: not a Kubernetes namespace: %s", *ns, strings.Join(errs, "; "))
		}
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return usageErr("--binderhub-config: %v", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return usageErr("--binderhub-config %s: not valid YAML: %v", *path, err)
	}
	cfg := importer.FindConfig(values)
	if cfg == nil {
		return usageErr("--binderhub-config %s: no BinderHub config found (expected config: or binderhub: config:)", *path)
	}
	pats, skips, err := importer.BannedSpecs(cfg)
	if err != nil {
		return usageErr("--binderhub-config %s: %v", *path, err)
	}
	if len(pats) == 0 && len(skips) == 0 {
		return usageErr("--binderhub-config %s: no banned_specs under config.<Provider> (e.g. config.GitHubRepoProvider.banned_specs)", *path)
	}
	return importer.Write(stdout, *path, *name, *ns, pats, skips)
}
