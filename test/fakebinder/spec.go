package fakebinder

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// imagePrefix stands for BinderHub's image_prefix; ".invalid" keeps the
// fake names from ever resolving to a real registry.
const imagePrefix = "fakebinder.invalid/r2d-"

// target is what BinderHub's repo provider works out from one spec: the
// repository, the resolved ref and the image the launch runs.
type target struct {
	Provider     string // "gh"
	Spec         string // spec without the provider, raw, trailing "/" stripped
	RepoURL      string // provider.get_repo_url()
	RefURL       string // provider.get_resolved_ref_url()
	ResolvedSpec string // provider.get_resolved_spec()
	Slug         string // provider.get_build_slug(), case preserved
	Ref          string // resolved ref (a fake commit hash)
	Image        string // image name; builds are deduplicated by it

	ref refKey // the unresolved ref, as Server.SetRef moves it
}

// refKey names one unresolved ref of one repository as its provider
// resolves it (GitHub: GET /repos/{user}/{repo}/commits/{ref}).
type refKey struct{ provider, repo, ref string }

// refs resolves the refs a test has moved (Server.SetRef) to their
// commit; nil, or a ref it does not know, resolves as fakeSHA does.
type refs func(refKey) (string, bool)

func (r refs) resolve(k refKey) string {
	if r != nil {
		if sha, ok := r(k); ok {
			return sha
		}
	}
	return fakeSHA(k.provider, k.repo, k.ref)
}

// specError is a spec BinderHub's provider rejects; Message is the text
// its failed event carries (no status code: BuildHandler.fail).
type specError struct{ Message string }

func (e *specError) Error() string { return e.Message }

var providers = map[string]func(spec string, r refs) (target, error){
	"gh":         parseGitHub,
	"gist":       parseGist,
	"git":        parseGit,
	"gl":         parseGitLab,
	"zenodo":     parseDOI("zenodo"),
	"figshare":   parseDOI("figshare"),
	"dataverse":  parseDOI("dataverse"),
	"hydroshare": noRefs(parseHydroshare),
	"ckan":       noRefs(parseCKAN),
}

// noRefs adapts a provider without refs that a test could move.
func noRefs(parse func(string) (target, error)) func(string, refs) (target, error) {
	return func(spec string, _ refs) (target, error) { return parse(spec) }
}

// knownProvider reports whether BinderHub's default repo_providers has p.
func knownProvider(p string) bool { _, ok := providers[p]; return ok }

// parseTarget does what BinderHub's provider constructor and ref
// resolution do for spec (raw, after "/build/<provider>/"), locally: refs
// "resolve" to a hash of repository and ref, so one ref is one image.
func parseTarget(provider, spec string) (target, error) { return resolveTarget(provider, spec, nil) }

// resolveTarget is parseTarget with the refs a test moved resolved to
// their commits, as the provider's get_resolved_ref would after a push.
func resolveTarget(provider, spec string, moved refs) (target, error) {
	parse, ok := providers[provider]
	if !ok {
		return target{}, &specError{fmt.Sprintf("No provider found for prefix %s", provider)}
	}
	t, err := parse(spec, moved)
	if err != nil {
		return target{}, err
	}
	t.Provider, t.Spec = provider, spec
	t.Image = imageName(t.Slug, t.Ref)
	return t, nil
}

// parseExtra is an ExtraProviders entry: like BinderHub's FakeProvider,
// with the spec as the repository.
func parseExtra(provider, spec string) target {
	sha := fakeSHA(provider, spec, "")
	t := target{
		Provider:     provider,
		Spec:         spec,
		RepoURL:      "https://" + provider + ".invalid/" + spec,
		RefURL:       "https://" + provider + ".invalid/" + spec + "/tree/" + sha,
		ResolvedSpec: spec,
		Slug:         provider + "-" + spec,
		Ref:          sha,
	}
	t.Image = imageName(t.Slug, t.Ref)
	return t
}

func parseGitHub(spec string, r refs) (target, error) {
	parts := strings.SplitN(spec, "/", 3) // the ref may contain "/"
	if len(parts) != 3 {
		msg := fmt.Sprintf(`Spec is not of the form "user/repo/ref", provided: "%s".`, spec)
		if len(parts) == 2 && !map[string]bool{"main": true, "master": true, "HEAD": true}[parts[1]] {
			msg += fmt.Sprintf(` Did you mean "%s/HEAD"?`, spec)
		}
		return target{}, &specError{msg}
	}
	user, repo, ref := parts[0], strings.TrimSuffix(parts[1], ".git"), parts[2]
	k := refKey{"gh", user + "/" + repo, ref}
	sha := r.resolve(k)
	return target{
		ref:          k,
		RepoURL:      "https://github.com/" + user + "/" + repo,
		RefURL:       "https://github.com/" + user + "/" + repo + "/tree/" + sha,
		ResolvedSpec: user + "/" + repo + "/" + sha,
		Slug:         user + "-" + repo,
		Ref:          sha,
	}, nil
}

func parseGist(spec string, r refs) (target, error) {
	parts := strings.Split(spec, "/")
	if len(parts) < 2 {
		return target{}, &specError{fmt.Sprintf("not enough values to unpack (expected at least 2, got %d)", len(parts))}
	}
	user, id, ref := parts[0], parts[1], ""
	if len(parts) > 2 {
		ref = parts[2]
	}
	k := refKey{"gist", user + "/" + id, ref}
	sha := r.resolve(k)
	return target{
		ref:          k,
		RepoURL:      "https://gist.github.com/" + user + "/" + id + ".git",
		RefURL:       "https://gist.github.com/" + user + "/" + id + "/" + sha,
		ResolvedSpec: user + "/" + id + "/" + sha,
		Slug:         id,
		Ref:          sha,
	}, nil
}

var gitSSH = regexp.MustCompile(`^([\w\-]+@[^:]+):(.+)$`)

func parseGit(spec string, r refs) (target, error) {
	escaped, rawRef, ok := strings.Cut(spec, "/")
	if !ok {
		return target{}, &specError{"not enough values to unpack (expected 2, got 1)"}
	}
	repo, err := url.PathUnescape(escaped)
	if err != nil {
		return target{}, &specError{fmt.Sprintf("Unsupported git url %s, protocol  not in http, https, git, ssh", escaped)}
	}
	if m := gitSSH.FindStringSubmatch(repo); m != nil {
		repo = "ssh://" + m[1] + "/" + m[2]
	}
	proto := ""
	if u, err := url.Parse(repo); err == nil {
		proto = u.Scheme
	}
	switch proto {
	case "http", "https", "git", "ssh":
	default:
		return target{}, &specError{fmt.Sprintf("Unsupported git url %s, protocol %s not in http, https, git, ssh", repo, proto)}
	}
	ref, err := url.PathUnescape(rawRef)
	if err != nil {
		ref = rawRef
	}
	if ref == "" {
		return target{}, &specError{"`unresolved_ref` must be specified in the url for the basic git provider"}
	}
	k := refKey{"git", repo, ref}
	sha := r.resolve(k)
	return target{
		ref:          k,
		RepoURL:      repo,
		RefURL:       repo,
		ResolvedSpec: escaped + "/" + sha,
		Slug:         repo,
		Ref:          sha,
	}, nil
}

func parseGitLab(spec string, r refs) (target, error) {
	quoted, rawRef, ok := strings.Cut(spec, "/")
	if !ok {
		return target{}, &specError{"not enough values to unpack (expected 2, got 1)"}
	}
	ns, err := url.PathUnescape(quoted)
	if err != nil {
		ns = quoted
	}
	ref, err := url.PathUnescape(rawRef)
	if err != nil {
		ref = rawRef
	}
	if ref == "" {
		return target{}, &specError{"An unresolved ref is required"}
	}
	k := refKey{"gl", ns, ref}
	sha := r.resolve(k)
	var slug []string
	for p := range strings.SplitSeq(ns, "/") {
		slug = append(slug, strings.ReplaceAll(p, "-", "_-"))
	}
	return target{
		ref:          k,
		RepoURL:      "https://gitlab.com/" + ns + ".git",
		RefURL:       "https://gitlab.com/" + ns + "/tree/" + sha,
		ResolvedSpec: quoted + "/" + sha,
		Slug:         strings.Join(slug, "-"),
		Ref:          sha,
	}, nil
}

var doiPattern = regexp.MustCompile(`^10\.\d+/.+`)

// parseDOI covers the DOI providers. BinderHub resolves the DOI over the
// network; a spec that is not a DOI fails to resolve.
func parseDOI(provider string) func(string, refs) (target, error) {
	return func(spec string, _ refs) (target, error) {
		if !doiPattern.MatchString(spec) {
			return target{}, &specError{fmt.Sprintf("Could not resolve ref for %s:%s. Double check your URL.", provider, spec)}
		}
		record := fakeSHA(provider, spec, "")[:8]
		resolved := spec
		if provider != "dataverse" {
			before, _, _ := strings.Cut(spec, provider)
			resolved = before + provider + "." + record
		}
		return target{
			RepoURL:      spec,
			RefURL:       "https://doi.org/" + resolved,
			ResolvedSpec: resolved,
			Slug:         provider + "-" + record,
			Ref:          record,
		}, nil
	}
}

var hydroshareID = regexp.MustCompile(`([0-9a-f]{32})`)

func parseHydroshare(spec string) (target, error) {
	m := hydroshareID.FindStringSubmatch(spec)
	if m == nil {
		return target{}, &specError{fmt.Sprintf("Error resolving ref for hydroshare:%s: The specified Hydroshare resource id was not recognized.", spec)}
	}
	ref := fakeSHA("hydroshare", m[1], "")[:8]
	u := "https://www.hydroshare.org/resource/" + m[1]
	return target{RepoURL: u, RefURL: u, ResolvedSpec: spec, Slug: "hydroshare-" + m[1], Ref: ref}, nil
}

func parseCKAN(spec string) (target, error) {
	repo, err := url.PathUnescape(spec)
	if err != nil {
		repo = spec
	}
	ref := fakeSHA("ckan", repo, "")[:8]
	return target{RepoURL: repo, RefURL: repo, ResolvedSpec: spec, Slug: "ckan-" + repo, Ref: ref}, nil
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// fakeSHA stands for ref resolution: a full hash stays itself, anything
// else becomes a stable hash of provider, repository and ref.
func fakeSHA(provider, repo, ref string) string {
	if fullSHA.MatchString(ref) {
		return ref
	}
	sum := sha1.Sum([]byte(provider + "\x00" + repo + "\x00" + ref))
	return hex.EncodeToString(sum[:])
}

// imageName follows BinderHub's image naming: the slug is escaped and
// suffixed with a hash of itself taken before lowercasing, so Org/Repo and
// org/repo get different images and build separately.
func imageName(slug, ref string) string {
	safe := safeBuildSlug(slug, 255-len(imagePrefix), 6)
	return strings.ToLower(strings.ReplaceAll(imagePrefix+safe+":"+ref, "_", "-"))
}

func safeBuildSlug(slug string, limit, hashLength int) string {
	sum := sha256.Sum256([]byte(slug))
	var b strings.Builder
	for _, c := range []byte(slug) {
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "-%02X", c) // escapism with escape_char "-"
		}
	}
	name := b.String()
	if n := limit - hashLength - 1; len(name) > n {
		name = name[:max(n, 0)]
	}
	return strings.ToLower(name + "-" + hex.EncodeToString(sum[:])[:hashLength])
}
