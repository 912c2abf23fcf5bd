package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Parser parses launch specs for BinderHub's built-in providers plus the
// extra provider prefixes a site registered in BinderHub.repo_providers.
// A nil *Parser knows the built-in providers only, like the package
// functions.
//
// binderguard cannot know how an extra provider reads its spec, so it
// does not guess: the collapse key is the spec as received, and the
// identity is the spec percent-decoded and lowercased (what every
// identity is, the safe side for a ban) under "<provider>:". Ban patterns
// are matched against both the spec as received and that decoded form.
type Parser struct {
	extra []string // sorted
}

// providerName is what BinderHub's route /build/([^/]+)/(.+) accepts as a
// provider, narrowed to what a Python dict key in a config would be.
var providerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// NewParser returns a Parser that also accepts the given extra provider
// prefixes. A name that is built in, repeated or not a path segment is an
// error naming it.
func NewParser(extra ...string) (*Parser, error) {
	p := &Parser{}
	for _, e := range extra {
		switch {
		case !providerName.MatchString(e):
			return nil, fmt.Errorf("extra provider %q: want letters, digits, '.', '_' or '-' (at most 63), as in /build/<provider>/<spec>", e)
		case KnownProvider(e):
			return nil, fmt.Errorf("extra provider %q is one of BinderHub's built-in providers (%s)", e, strings.Join(Providers(), ", "))
		case slices.Contains(p.extra, e):
			return nil, fmt.Errorf("extra provider %q is listed twice", e)
		}
		p.extra = append(p.extra, e)
	}
	slices.Sort(p.extra)
	return p, nil
}

// Extra lists the extra provider prefixes, sorted.
func (p *Parser) Extra() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.extra)
}

// Providers lists every provider prefix p accepts: built-in, then extra.
func (p *Parser) Providers() []string { return append(Providers(), p.Extra()...) }

// Known reports whether provider is built in or one of p's extras.
func (p *Parser) Known(provider string) bool { return KnownProvider(provider) || p.isExtra(provider) }

func (p *Parser) isExtra(provider string) bool {
	if p == nil {
		return false
	}
	_, ok := slices.BinarySearch(p.extra, provider)
	return ok
}

// Parse is the package Parse, accepting p's extra providers too.
func (p *Parser) Parse(providerSpec string) (Spec, error) { return p.parse(providerSpec) }

// ParseRequest is the package ParseRequest, accepting p's extra providers too.
func (p *Parser) ParseRequest(r string) (Spec, error) { return p.parseRequest(r) }

// parseExtra reads the spec of an extra provider: nothing is known about
// its shape, so it is taken whole.
func parseExtra(provider, raw string) (Spec, *Error) {
	canon := strings.ToLower(decodeAll(raw))
	return Spec{
		Repo:  Repo(provider + ":" + canon),
		canon: canon,
		extra: true,
	}, nil
}
