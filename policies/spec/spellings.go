package spec

import "strings"

// Spelling is one way BinderHub's per-provider regexes (banned_specs and
// friends, matched against the spec without the provider prefix) could see a
// repository. Matching BinderHub-style patterns against every spelling is
// what makes them as hard to evade as the Repo identity.
type Spelling struct {
	Provider string // the provider whose patterns apply to Text
	Text     string // spec without the provider prefix
	// Canonical is true for spellings derived from the identity rather than
	// taken from the request: not under the requester's control.
	Canonical bool
}

// Spellings returns the raw spec, its canonical spelling in its own
// provider, and its canonical spelling in every other provider that can
// reach the same repository (a github.com git URL is also "org/repo/ref" for
// gh patterns; gh/org/repo is also "https%3A%2F%2Fgithub.com%2Forg%2Frepo/ref"
// for git patterns).
func (s Spec) Spellings() []Spelling {
	out := make([]Spelling, 0, 4)
	if s.canon == "" || s.canon == s.Raw {
		out = append(out, Spelling{Provider: s.Provider, Text: s.Raw, Canonical: s.canon != ""})
	} else {
		out = append(out, Spelling{Provider: s.Provider, Text: s.Raw},
			Spelling{Provider: s.Provider, Text: s.canon, Canonical: true})
	}
	if s.extra { // binderguard does not know which other providers reach it
		return out
	}
	for _, sp := range s.Repo.spellings(s.Ref, true) {
		if sp.Provider != s.Provider {
			out = append(out, sp)
		}
	}
	return out
}

// Spellings returns the canonical spellings of a repository without a ref,
// for pattern checks where only the repository is known (a pod's repo URL).
// A pattern that needs a ref to match cannot match these.
func (r Repo) Spellings() []Spelling { return r.spellings("", false) }

func (r Repo) spellings(ref string, withRef bool) []Spelling {
	s := string(r)
	suffix := ""
	if withRef && ref != "" {
		suffix = "/" + ref
	}
	host, path, _ := strings.Cut(s, "/")
	gitURL := Spelling{Provider: ProviderGit, Text: escape("https://"+s) + suffix, Canonical: true}
	switch host {
	case "github.com":
		return []Spelling{{Provider: ProviderGitHub, Text: path + suffix, Canonical: true}, gitURL}
	case "gitlab.com":
		return []Spelling{{Provider: ProviderGitLab, Text: escape(path) + suffix, Canonical: true}, gitURL}
	case "gist.github.com":
		return []Spelling{gitURL}
	case "doi.org":
		doi := path
		if withRef && ref != "" {
			doi += "." + ref // figshare versions
		}
		return []Spelling{
			{Provider: ProviderZenodo, Text: doi, Canonical: true},
			{Provider: ProviderFigshare, Text: doi, Canonical: true},
			{Provider: ProviderDataverse, Text: doi, Canonical: true},
		}
	case "hydroshare.org":
		return []Spelling{{Provider: ProviderHydroshare, Text: strings.TrimPrefix(path, "resource/"), Canonical: true}}
	}
	if strings.Contains(s, "/dataset/") {
		return []Spelling{{Provider: ProviderCKAN, Text: escape("https://" + s), Canonical: true}, gitURL}
	}
	return []Spelling{gitURL}
}
