package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// providerClasses maps BinderHub's traitlets classes to provider prefixes.
// RepoProvider's own banned_specs apply to every provider (traitlets config
// on a base class is inherited), hence "".
var providerClasses = map[string]v1alpha1.Provider{
	"RepoProvider":       "",
	"GitHubRepoProvider": v1alpha1.ProviderGitHub,
	"GistRepoProvider":   v1alpha1.ProviderGist,
	"GitRepoProvider":    v1alpha1.ProviderGit,
	"GitLabRepoProvider": v1alpha1.ProviderGitLab,
	"ZenodoProvider":     v1alpha1.ProviderZenodo,
	"FigshareProvider":   v1alpha1.ProviderFigshare,
	"HydroshareProvider": v1alpha1.ProviderHydroShare,
	"DataverseProvider":  v1alpha1.ProviderDataverse,
	"CKANProvider":       v1alpha1.ProviderCKAN,
}

// importedBan is the printed shape: only what an operator writes.
type importedBan struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
	} `json:"metadata"`
	Spec v1alpha1.RepoBanSpec `json:"spec"`
}

// skipped is a banned_specs entry that cannot be carried over.
type skipped struct{ class, regex, reason string }

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
	data, err := os.ReadFile(*path)
	if err != nil {
		return usageErr("--binderhub-config: %v", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return usageErr("--binderhub-config %s: not valid YAML: %v", *path, err)
	}
	cfg := binderHubConfig(values)
	if cfg == nil {
		return usageErr("--binderhub-config %s: no BinderHub config found (expected config: or binderhub: config:)", *path)
	}
	pats, skips, err := bannedSpecs(cfg)
	if err != nil {
		return usageErr("--binderhub-config %s: %v", *path, err)
	}
	if len(pats) == 0 && len(skips) == 0 {
		return usageErr("--binderhub-config %s: no banned_specs under config.<Provider> (e.g. config.GitHubRepoProvider.banned_specs)", *path)
	}
	return writeImport(stdout, *path, *name, *ns, pats, skips)
}

// binderHubConfig finds the traitlets config section.
func binderHubConfig(values map[string]any) map[string]any {
	if c, ok := values["config"].(map[string]any); ok {
		return c
	}
	if bh, ok := values["binderhub"].(map[string]any); ok {
		if c, ok := bh["config"].(map[string]any); ok {
			return c
		}
	}
	return nil
}

func bannedSpecs(cfg map[string]any) ([]v1alpha1.SpecPattern, []skipped, error) {
	classes := make([]string, 0, len(cfg))
	for k := range cfg {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	var pats []v1alpha1.SpecPattern
	var skips []skipped
	for _, class := range classes {
		sect, ok := cfg[class].(map[string]any)
		if !ok {
			continue
		}
		raw, ok := sect["banned_specs"]
		if !ok {
			continue
		}
		provider, known := providerClasses[class]
		list, isList := raw.([]any)
		if !isList {
			return nil, nil, fmt.Errorf("config.%s.banned_specs is not a list", class)
		}
		for _, item := range list {
			re, ok := item.(string)
			if !ok {
				skips = append(skips, skipped{class, fmt.Sprint(item), "not a string"})
				continue
			}
			switch {
			case !known:
				skips = append(skips, skipped{class, re, "unknown provider class"})
			case len(re) > 256:
				skips = append(skips, skipped{class, re, "longer than 256 characters"})
			default:
				if _, err := match.CompileRegex(re); err != nil {
					skips = append(skips, skipped{class, re, err.Error()})
					continue
				}
				re2, _ := match.TranslatePython(re) // Python's \Z is \z in RE2
				pats = append(pats, v1alpha1.SpecPattern{Regex: v1alpha1.Regex(re2), Provider: provider})
			}
		}
	}
	return pats, skips, nil
}

func writeImport(w io.Writer, path, name, ns string, pats []v1alpha1.SpecPattern, skips []skipped) error {
	fmt.Fprintf(w, "# RepoBan imported from the banned_specs in %s by `binderguard policy import`.\n", path)
	fmt.Fprintf(w, "# Patterns keep BinderHub's meaning (re.match, case-insensitive, per provider) and also\n")
	fmt.Fprintf(w, "# match every other spelling of the same repository. Where a pattern names one repository,\n")
	fmt.Fprintf(w, "# consider moving it to spec.repos.\n")
	for _, s := range skips {
		fmt.Fprintf(w, "# NOT IMPORTED: config.%s.banned_specs %q: %s\n", s.class, s.regex, oneLine(s.reason))
	}
	const perBan = 256 // the CRD's maxItems for spec.patterns
	for i := 0; i*perBan < len(pats); i++ {
		b := importedBan{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindRepoBan}
		b.Metadata.Name, b.Metadata.Namespace = name, ns
		if i > 0 {
			b.Metadata.Name = fmt.Sprintf("%s-%d", name, i+1)
		}
		b.Spec.Patterns = pats[i*perBan : min(len(pats), (i+1)*perBan)]
		// what we print must be accepted by binderguard and the API server
		check := v1alpha1.RepoBan{Spec: b.Spec}
		check.Name, check.Namespace = b.Metadata.Name, b.Metadata.Namespace
		if _, errs := snapshot.ValidateRepoBan(&check); len(errs) > 0 {
			return fmt.Errorf("imported RepoBan %s is not valid: %w", b.Metadata.Name, errs.ToAggregate())
		}
		out, err := yaml.Marshal(b)
		if err != nil {
			return fmt.Errorf("writing RepoBan YAML: %w", err)
		}
		fmt.Fprintf(w, "---\n%s", out)
	}
	return nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
