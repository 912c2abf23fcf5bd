package spec

import (
	"fmt"
	"strings"
)

// Provider prefixes, as in BinderHub's /build/<provider>/<spec> routes.
const (
	ProviderGitHub     = "gh"
	ProviderGist       = "gist"
	ProviderGit        = "git"
	ProviderGitLab     = "gl"
	ProviderZenodo     = "zenodo"
	ProviderFigshare   = "figshare"
	ProviderHydroshare = "hydroshare"
	ProviderDataverse  = "dataverse"
	ProviderCKAN       = "ckan"
)

// Providers lists every provider prefix this package understands.
func Providers() []string {
	return []string{ProviderGitHub, ProviderGist, ProviderGit, ProviderGitLab, ProviderZenodo,
		ProviderFigshare, ProviderHydroshare, ProviderDataverse, ProviderCKAN}
}

// KnownProvider reports whether p is a provider prefix this package parses.
func KnownProvider(p string) bool {
	for _, k := range Providers() {
		if p == k {
			return true
		}
	}
	return false
}

// Repo is a canonical repository identity, the same whichever provider or
// spelling reached it: "github.com/jupyterlab/jupyterlab-demo",
// "gitlab.com/group/project", "gist.github.com/<id>", "doi.org/10.5281/zenodo.3242074",
// "hydroshare.org/resource/<id>", "<host>/<path>" for any other git host or
// CKAN dataset, or "<provider>:<decoded spec>" for an extra provider (see
// Parser). Always lowercase (see the package comment for why).
type Repo string

func (r Repo) String() string { return string(r) }

// Spec is one parsed launch spec.
type Spec struct {
	// Provider is the provider prefix: "gh", "gist", "git", "gl", "zenodo",
	// "figshare", "hydroshare", "dataverse", "ckan", or an extra provider
	// a Parser was given.
	Provider string
	// Raw is the spec without the provider, as received (still
	// percent-encoded), with trailing slashes removed as BinderHub does.
	Raw string
	// Repo is the canonical repository identity.
	Repo Repo
	// Ref is the unresolved ref, percent-decoded; "" when the provider has
	// none (zenodo, dataverse, hydroshare, ckan without history, a gist
	// without a ref).
	Ref string

	build string // BuildKey, computed by Parse
	canon string // canonical spelling within Provider, for pattern matching
	extra bool   // an extra provider (see Parser): no cross-provider spellings
}

// BuildKey is the collapse key: two specs with the same key are one build in
// BinderHub. Letter case is kept (BinderHub builds Org/Repo and org/repo
// apart), percent-encoding is decoded, trailing slashes and a ".git" suffix
// on a GitHub repository are dropped the way BinderHub drops them.
func (s Spec) BuildKey() string {
	if s.build != "" {
		return s.build
	}
	return s.Provider + "/" + s.Raw
}

// Path is the launch path for this spec: "/build/<provider>/<raw>".
func (s Spec) Path() string { return "/build/" + s.Provider + "/" + s.Raw }

// String is "<provider>/<raw>".
func (s Spec) String() string { return s.Provider + "/" + s.Raw }

// Error is returned for input that is not a valid spec, request or
// repository URL. Its message is fit to show the user who launched.
type Error struct {
	Input  string // what was given
	Reason string // why it is not valid, as a sentence
}

func (e *Error) Error() string { return fmt.Sprintf("%q: %s", e.Input, e.Reason) }

func errf(input, format string, a ...any) *Error {
	return &Error{Input: input, Reason: fmt.Sprintf(format, a...)}
}

// maxInput bounds what is parsed: BinderHub paths are far shorter, and the
// bound keeps repeated decoding cheap on hostile input.
const maxInput = 4096

// Parse parses "<provider>/<spec>", the path after "/build/" (a leading
// "/build/" is also accepted). The query string must already be removed.
func Parse(providerSpec string) (Spec, error) { return (*Parser)(nil).parse(providerSpec) }

func (p *Parser) parse(providerSpec string) (Spec, error) {
	in := providerSpec
	s := strings.TrimPrefix(in, "/build/")
	if err := checkChars(in, s); err != nil {
		return Spec{}, err
	}
	provider, rest, ok := strings.Cut(s, "/")
	if !ok || provider == "" {
		return Spec{}, errf(in, "a launch spec has the form <provider>/<spec>, e.g. gh/binder-examples/requirements/HEAD")
	}
	if !p.Known(provider) {
		return Spec{}, errf(in, "no provider found for prefix %q (known: %s)", provider, strings.Join(p.Providers(), ", "))
	}
	rest = strings.TrimRight(rest, "/")
	if rest == "" {
		return Spec{}, errf(in, "the %s spec is empty", provider)
	}
	var (
		sp  Spec
		err *Error
	)
	switch provider {
	case ProviderGitHub:
		sp, err = parseGitHub(rest)
	case ProviderGist:
		sp, err = parseGist(rest)
	case ProviderGit:
		sp, err = parseGit(rest)
	case ProviderGitLab:
		sp, err = parseGitLab(rest)
	case ProviderZenodo, ProviderFigshare, ProviderDataverse:
		sp, err = parseDOISpec(provider, rest)
	case ProviderHydroshare:
		sp, err = parseHydroshare(rest)
	case ProviderCKAN:
		sp, err = parseCKAN(rest)
	default:
		sp, err = parseExtra(provider, rest)
	}
	if err == nil && !printable(string(sp.Repo)) {
		err = &Error{Reason: "the repository name contains a space or control character once decoded"}
	}
	if err != nil {
		err.Input = in
		return Spec{}, err
	}
	sp.Provider, sp.Raw = provider, rest
	return sp, nil
}

// printable reports whether s has no spaces or ASCII control characters.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// checkChars rejects what cannot be part of a request path.
func checkChars(in, s string) *Error {
	if len(s) > maxInput {
		return errf(in[:64]+"...", "longer than %d bytes", maxInput)
	}
	if s == "" {
		return errf(in, "empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x21 || c == 0x7f:
			return errf(in, "contains a space or control character; percent-encode it")
		case c == '?' || c == '#':
			return errf(in, "contains %q; pass the path without query or fragment", c)
		}
	}
	return nil
}

// ParseRequest parses a BINDER_REQUEST or BINDER_PERSISTENT_REQUEST value,
// "v2/<provider>/<spec>" (a leading "/" and a query string are tolerated).
func ParseRequest(r string) (Spec, error) { return (*Parser)(nil).parseRequest(r) }

func (p *Parser) parseRequest(r string) (Spec, error) {
	s := strings.TrimPrefix(strings.TrimSpace(r), "/")
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	rest, ok := strings.CutPrefix(s, "v2/")
	if !ok {
		return Spec{}, errf(r, "a launch request has the form v2/<provider>/<spec>")
	}
	sp, err := p.parse(rest)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Input = r
		}
		return Spec{}, err
	}
	return sp, nil
}

// ParseRepo parses a repository as written in a RepoBan or LaunchPolicy
// selector: a provider spec with or without a ref ("gh/org/repo",
// "git/<url-encoded clone url>", "gl/<url-encoded namespace>",
// "zenodo/<doi>"), a repository URL ("https://github.com/org/repo",
// "git@github.com:org/repo.git", a DOI), or a Repo identity
// ("github.com/org/repo"). A ref, if given, is ignored: a ban covers every ref.
func ParseRepo(s string) (Repo, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", errf(s, "a repository is required")
	}
	provider, rest, _ := strings.Cut(in, "/")
	if !KnownProvider(provider) {
		if strings.Contains(in, "://") || scpLike.MatchString(in) || looksLikeDOI(in) {
			return ParseRepoURL(in)
		}
		if strings.ContainsAny(provider, ".:[") { // a Repo identity: host/path
			return ParseRepoURL("https://" + in)
		}
		return "", errf(s, "not a repository: use <provider>/<spec> without a ref (e.g. gh/org/repo), a repository URL, or a DOI")
	}
	rest = strings.TrimRight(rest, "/")
	switch provider {
	case ProviderGitHub:
		if strings.Count(rest, "/") == 1 {
			rest += "/HEAD"
		}
	case ProviderGit, ProviderGitLab:
		if !strings.Contains(rest, "/") {
			rest += "/HEAD"
		}
	}
	sp, err := Parse(provider + "/" + rest)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Input = s
		}
		return "", err
	}
	return sp.Repo, nil
}
