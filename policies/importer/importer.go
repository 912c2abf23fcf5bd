// Package importer turns the banned_specs of a BinderHub configuration
// (its traitlets config, as found in helm values) into RepoBans that keep
// BinderHub's meaning: re.match, case-insensitive, per provider class.
//
// It is pure: values in, RepoBan YAML out. It must never read files, talk
// to an API server, or print a RepoBan that binderguard (or the API
// server) would refuse; what it cannot carry over it reports as Skipped.
package importer

import (
	"fmt"
	"io"
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

// perBan is the most patterns one RepoBan holds (the CRD's maxItems for
// spec.patterns); more spill into name-2, name-3 ...
const perBan = 256

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

// Skipped is a banned_specs entry that cannot be carried over.
type Skipped struct{ Class, Regex, Reason string }

// FindConfig returns the traitlets config section of BinderHub helm values:
// the binderhub chart's `config:`, or `binderhub: config:` in an umbrella
// chart such as mybinder.org-deploy's; nil when there is neither.
func FindConfig(values map[string]any) map[string]any {
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

// BannedSpecs returns the patterns of every <Provider>.banned_specs in cfg,
// in class order, and the entries it could not carry over. A banned_specs
// that is not a list is an error: nothing of it can be read.
func BannedSpecs(cfg map[string]any) ([]v1alpha1.SpecPattern, []Skipped, error) {
	classes := make([]string, 0, len(cfg))
	for k := range cfg {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	var pats []v1alpha1.SpecPattern
	var skips []Skipped
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
				skips = append(skips, Skipped{class, fmt.Sprint(item), "not a string"})
				continue
			}
			switch {
			case !known:
				skips = append(skips, Skipped{class, re, "unknown provider class"})
			case len(re) > 256:
				skips = append(skips, Skipped{class, re, "longer than 256 characters"})
			default:
				if _, err := match.CompileRegex(re); err != nil {
					skips = append(skips, Skipped{class, re, err.Error()})
					continue
				}
				re2, _ := match.TranslatePython(re) // Python's \Z is \z in RE2
				pats = append(pats, v1alpha1.SpecPattern{Regex: v1alpha1.Regex(re2), Provider: provider})
			}
		}
	}
	return pats, skips, nil
}

// Write prints the RepoBans named name (in namespace ns, "" for none)
// holding pats, after a comment header naming the source path and every
// skipped entry. Each RepoBan is validated as binderguard would before it
// is printed.
func Write(w io.Writer, path, name, ns string, pats []v1alpha1.SpecPattern, skips []Skipped) error {
	fmt.Fprintf(w, "# RepoBan imported from the banned_specs in %s by `binderguard policy import`.\n", path)
	fmt.Fprintf(w, "# Patterns keep BinderHub's meaning (re.match, case-insensitive, per provider) and also\n")
	fmt.Fprintf(w, "# match every other spelling of the same repository. Where a pattern names one repository,\n")
	fmt.Fprintf(w, "# consider moving it to spec.repos.\n")
	for _, s := range skips {
		fmt.Fprintf(w, "# NOT IMPORTED: config.%s.banned_specs %q: %s\n", s.Class, s.Regex, oneLine(s.Reason))
	}
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
