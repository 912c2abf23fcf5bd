package spec

import (
	"regexp"
	"strings"
)

// parseGitHub follows GitHubRepoProvider: "<user>/<repo>/<ref>" split at the
// first two slashes (the ref may contain "/"), a ".git" suffix stripped.
// BinderHub passes the parts still percent-encoded to the GitHub API, which
// decodes them, so the identity decodes them too.
func parseGitHub(raw string) (Spec, *Error) {
	parts := strings.SplitN(raw, "/", 3)
	if len(parts) != 3 {
		msg := `Spec is not of the form "user/repo/ref", provided: "` + raw + `".`
		if len(parts) == 2 && parts[1] != "main" && parts[1] != "master" && parts[1] != "HEAD" {
			msg += ` Did you mean "` + raw + `/HEAD"?`
		}
		return Spec{}, &Error{Reason: msg}
	}
	owner, name, ref := decodeAll(parts[0]), decodeAll(parts[1]), decodeAll(parts[2])
	if !isGitHubName(owner) {
		return Spec{}, &Error{Reason: "a GitHub owner is letters, digits, '-', '_' or '.', got " + quote(owner)}
	}
	buildName := strings.TrimSuffix(name, ".git") // what BinderHub builds
	id := stripGitSuffix(strings.ToLower(name))   // what GitHub serves
	if !isGitHubName(name) || id == "" {
		return Spec{}, &Error{Reason: "a GitHub repository name is letters, digits, '-', '_' or '.', got " + quote(name)}
	}
	if ref == "" {
		return Spec{}, &Error{Reason: "a ref is required, e.g. HEAD"}
	}
	lo := strings.ToLower(owner)
	return Spec{
		Repo:  Repo("github.com/" + lo + "/" + id),
		Ref:   ref,
		build: "gh/" + owner + "/" + buildName + "/" + ref,
		canon: lo + "/" + id + "/" + ref,
	}, nil
}

// parseGist follows GistRepoProvider: "<user>/<gist-id>[/<ref>]". The gist is
// fetched by id alone, so the user is not part of the identity.
func parseGist(raw string) (Spec, *Error) {
	parts := strings.Split(raw, "/")
	if len(parts) < 2 {
		return Spec{}, &Error{Reason: `a gist spec has the form "user/gist-id[/ref]"`}
	}
	user, id := decodeAll(parts[0]), decodeAll(parts[1])
	if !isGitHubName(user) {
		return Spec{}, &Error{Reason: "a gist user is letters, digits, '-', '_' or '.', got " + quote(user)}
	}
	if !isAlnum(id) {
		return Spec{}, &Error{Reason: "a gist id is letters and digits, got " + quote(id)}
	}
	ref := ""
	if len(parts) > 2 {
		ref = decodeAll(parts[2])
	}
	buildRef := ref
	switch ref { // BinderHub resolves all of these to the newest revision
	case "", "HEAD", "master", "main":
		buildRef = "HEAD"
	}
	lid := strings.ToLower(id)
	canon := strings.ToLower(user) + "/" + lid
	if ref != "" {
		canon += "/" + ref
	}
	return Spec{
		Repo:  Repo("gist.github.com/" + lid),
		Ref:   ref,
		build: "gist/" + id + "/" + buildRef,
		canon: canon,
	}, nil
}

// parseGit follows GitRepoProvider: "<url-encoded clone url>/<ref>", split at
// the first slash, the URL decoded once, "user@host:path" mapped to ssh://,
// protocols http, https, git and ssh.
func parseGit(raw string) (Spec, *Error) {
	escaped, refRaw, ok := strings.Cut(raw, "/")
	if !ok {
		return Spec{}, &Error{Reason: "a git spec has the form <url-encoded clone URL>/<ref>, e.g. https%3A%2F%2Fexample.org%2Frepo.git/HEAD"}
	}
	u := unquote(escaped)
	ref := decodeAll(refRaw)
	if ref == "" {
		return Spec{}, &Error{Reason: "`unresolved_ref` must be specified in the url for the basic git provider"}
	}
	cu, err := parseCloneURL(u)
	if err != nil {
		// BinderHub decodes once and would fail here; decoding further can
		// only widen what a ban covers, never let a spelling through.
		if cu2, err2 := parseCloneURL(decodeAll(u)); err2 == nil {
			cu, err = cu2, nil
		}
	}
	if err != nil {
		return Spec{}, err
	}
	if !gitSchemes[cu.scheme] {
		return Spec{}, &Error{Reason: "unsupported git url " + u + ", protocol " + cu.scheme + " not in http, https, git, ssh"}
	}
	repo, err := cu.identity()
	if err != nil {
		return Spec{}, err
	}
	return Spec{
		Repo:  repo,
		Ref:   ref,
		build: "git/" + u + "/" + ref,
		canon: escape("https://"+string(repo)) + "/" + ref,
	}, nil
}

// parseGitLab follows GitLabRepoProvider: "<url-encoded namespace>/<ref>".
func parseGitLab(raw string) (Spec, *Error) {
	quoted, refRaw, ok := strings.Cut(raw, "/")
	if !ok {
		return Spec{}, &Error{Reason: "a gl spec has the form <url-encoded namespace>/<ref>, e.g. group%2Fproject/HEAD"}
	}
	ns := unquote(quoted)
	ref := decodeAll(refRaw)
	if ref == "" {
		return Spec{}, &Error{Reason: "An unresolved ref is required"}
	}
	id := gitLabPath(splitPath(decodeAll(ns)))
	if id == "" {
		return Spec{}, &Error{Reason: "a GitLab namespace names a project, e.g. group%2Fproject"}
	}
	return Spec{
		Repo:  Repo("gitlab.com/" + id),
		Ref:   ref,
		build: "gl/" + ns + "/" + ref,
		canon: escape(id) + "/" + ref,
	}, nil
}

// parseDOISpec handles zenodo, figshare and dataverse: the whole spec is a DOI.
func parseDOISpec(provider, raw string) (Spec, *Error) {
	doi, ok := cleanDOI(decodeAll(raw))
	if !ok {
		return Spec{}, &Error{Reason: "a " + provider + " spec is a DOI such as 10.5281/zenodo.3242074"}
	}
	repo, ref := doiIdentity(doi)
	return Spec{
		Repo:  repo,
		Ref:   ref,
		build: provider + "/" + doi,
		canon: doi,
	}, nil
}

// parseHydroshare follows HydroshareProvider: the resource id is the last run
// of 32 hex digits anywhere in the spec (BinderHub's greedy ".*([0-9a-f]{32}).*").
func parseHydroshare(raw string) (Spec, *Error) {
	id := last32Hex(strings.ToLower(decodeAll(raw)))
	if id == "" {
		return Spec{}, &Error{Reason: "The specified Hydroshare resource id was not recognized."}
	}
	return Spec{
		Repo:  Repo("hydroshare.org/resource/" + id),
		build: "hydroshare/" + id,
		canon: id,
	}, nil
}

// parseCKAN follows CKANProvider: the spec is a url-encoded dataset URL,
// "<site>[/prefix]/dataset/<id>[/history/<activity>][?activity_id=...]".
func parseCKAN(raw string) (Spec, *Error) {
	u := unquote(raw)
	cu, err := parseCloneURL(u)
	if err != nil {
		return Spec{}, err
	}
	if (cu.scheme != "http" && cu.scheme != "https") || cu.host == "" {
		return Spec{}, &Error{Reason: "a CKAN dataset URL starts with http:// or https:// and a host"}
	}
	repo, ref, ok := cu.ckanIdentity()
	if !ok {
		return Spec{}, &Error{Reason: "not a CKAN dataset URL: it has no /dataset/<id> in its path"}
	}
	return Spec{
		Repo:  repo,
		Ref:   ref,
		build: "ckan/" + u,
		canon: escape("https://" + string(repo)),
	}, nil
}

var (
	gitHubName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	alnum      = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	doiRE      = regexp.MustCompile(`^10\.[0-9]+/\S+$`)
	figVersion = regexp.MustCompile(`^(.*figshare.*)\.(v[0-9]+)$`)
)

// isGitHubName: letters, digits, '-', '_', '.'; GitHub refuses "." and "..".
func isGitHubName(s string) bool { return s != "." && s != ".." && gitHubName.MatchString(s) }
func isAlnum(s string) bool      { return alnum.MatchString(s) }

// stripGitSuffix removes every trailing ".git" (lowercase input).
func stripGitSuffix(s string) string {
	for strings.HasSuffix(s, ".git") {
		s = strings.TrimSuffix(s, ".git")
	}
	return s
}

func looksLikeDOI(s string) bool {
	_, ok := cleanDOI(s)
	return ok
}

// cleanDOI lowercases a DOI, removes "doi:" or a doi.org URL in front and
// resolves dot segments.
func cleanDOI(s string) (string, bool) {
	d := strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"doi:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/"} {
		d = strings.TrimPrefix(d, p)
	}
	// Dot segments and empty segments go as in a URL path, so the spec
	// "10.0/./x" and the URL https://doi.org/10.0/./x (which clients
	// normalise before sending) are one identity.
	d = strings.Join(splitPath(d), "/")
	return d, doiRE.MatchString(d)
}

// doiIdentity splits a figshare version (".v3") off as the ref so that a
// ban covers every version of an article.
func doiIdentity(doi string) (Repo, string) {
	if m := figVersion.FindStringSubmatch(doi); m != nil {
		return Repo("doi.org/" + m[1]), m[2]
	}
	return Repo("doi.org/" + doi), ""
}

// last32Hex mirrors re.match(r".*([0-9a-f]{32}).*"): the greedy ".*" makes
// it the 32 hex digits that start furthest to the right.
func last32Hex(s string) string {
	run := 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') {
			run++
			if run == 32 {
				return s[i : i+32]
			}
		} else {
			run = 0
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
