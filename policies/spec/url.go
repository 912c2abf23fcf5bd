package spec

import (
	"regexp"
	"strings"
)

// scpLike is BinderHub's GIT_SSH_PATTERN: "user@host:path" means ssh://user@host/path.
var scpLike = regexp.MustCompile(`^([\w\-]+@[\w\-.]+):(.+)$`)

var gitSchemes = map[string]bool{"http": true, "https": true, "git": true, "ssh": true}

// cloneURL is a repository URL reduced to what identifies the repository.
type cloneURL struct {
	scheme string // lowercase
	host   string // lowercase, no trailing dot, no port
	port   string // "" or a non-default port
	path   string // percent-decoded, without query and fragment
	query  string // raw query, for CKAN activity ids
}

// parseCloneURL parses an absolute URL or an scp-like ssh address. It is
// deliberately forgiving (git, curl and browsers are): user info, default
// ports, a trailing dot on the host and "www." on the big forges are dropped.
func parseCloneURL(u string) (cloneURL, *Error) {
	u = strings.TrimSpace(u)
	if m := scpLike.FindStringSubmatch(u); m != nil {
		u = "ssh://" + m[1] + "/" + m[2]
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || scheme == "" {
		return cloneURL{}, &Error{Reason: "not a repository URL: expected scheme://host/path or user@host:path, got " + quote(u)}
	}
	var cu cloneURL
	cu.scheme = strings.ToLower(scheme)
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, cu.query = rest[:i], rest[i+1:]
	}
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	host, port := authority, ""
	if strings.HasPrefix(host, "[") { // IPv6 literal
		if j := strings.IndexByte(host, ']'); j >= 0 {
			host, port = host[:j+1], strings.TrimPrefix(host[j+1:], ":")
		}
	} else if j := strings.LastIndexByte(host, ':'); j >= 0 {
		host, port = host[:j], host[j+1:]
	}
	host = strings.TrimRight(strings.ToLower(decodeAll(host)), ".")
	switch host {
	case "www.github.com", "ssh.github.com": // ssh.github.com is GitHub's SSH-over-443 host
		host = "github.com"
	case "www.gitlab.com", "altssh.gitlab.com": // GitLab's SSH-over-443 host
		host = "gitlab.com"
	case "www.gist.github.com":
		host = "gist.github.com"
	case "hydroshare.org":
		host = "www.hydroshare.org"
	case "dx.doi.org", "www.doi.org":
		host = "doi.org"
	case "www.zenodo.org":
		host = "zenodo.org"
	}
	switch {
	case host == "github.com" || host == "gitlab.com" || host == "gist.github.com":
		port = "" // every port of these hosts serves the same repositories
	case defaultPorts[cu.scheme] == port:
		port = ""
	}
	cu.host, cu.port = host, port
	cu.path = decodeAll(path)
	return cu, nil
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "git": "9418", "ssh": "22"}

// identity maps a clone URL to a Repo, recognising the forges and DOI hosts
// so that every way to name one repository gives one Repo.
func (cu cloneURL) identity() (Repo, *Error) {
	segs := splitPath(cu.path)
	if cu.host == "" {
		return "", &Error{Reason: "the repository URL has no host"}
	}
	switch cu.host {
	case "github.com":
		if len(segs) < 2 {
			return "", &Error{Reason: "a GitHub URL names an owner and a repository, e.g. https://github.com/org/repo"}
		}
		owner, name := strings.ToLower(segs[0]), stripGitSuffix(strings.ToLower(segs[1]))
		if !isGitHubName(owner) || !isGitHubName(name) {
			return "", &Error{Reason: "not a GitHub repository: " + quote(cu.path)}
		}
		return Repo("github.com/" + owner + "/" + name), nil
	case "gist.github.com":
		if len(segs) == 0 {
			return "", &Error{Reason: "a gist URL names a gist id"}
		}
		id := segs[0]
		if len(segs) > 1 {
			id = segs[1]
		}
		id = stripGitSuffix(strings.ToLower(id))
		if !isAlnum(id) {
			return "", &Error{Reason: "a gist id is letters and digits, got " + quote(id)}
		}
		return Repo("gist.github.com/" + id), nil
	case "gitlab.com":
		id := gitLabPath(segs)
		if id == "" {
			return "", &Error{Reason: "a GitLab URL names a project, e.g. https://gitlab.com/group/project"}
		}
		return Repo("gitlab.com/" + id), nil
	case "doi.org":
		if doi, ok := cleanDOI(strings.Join(segs, "/")); ok {
			r, _ := doiIdentity(doi)
			return r, nil
		}
	case "zenodo.org":
		if len(segs) >= 2 && (segs[0] == "record" || segs[0] == "records") && isDigits(segs[1]) {
			return Repo("doi.org/10.5281/zenodo." + segs[1]), nil
		}
	case "www.hydroshare.org":
		if id := last32Hex(strings.ToLower(cu.path)); id != "" {
			return Repo("hydroshare.org/resource/" + id), nil
		}
	}
	if r, _, ok := cu.ckanIdentity(); ok {
		return r, nil
	}
	if len(segs) == 0 {
		return "", &Error{Reason: "the repository URL names no repository: " + quote(cu.host)}
	}
	segs = append([]string(nil), segs...)
	segs[len(segs)-1] = stripGitSuffix(strings.ToLower(segs[len(segs)-1]))
	if segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 0 {
		return "", &Error{Reason: "the repository URL names no repository: " + quote(cu.host)}
	}
	return Repo(strings.ToLower(cu.hostPort() + "/" + strings.Join(segs, "/"))), nil
}

// ckanIdentity is "<host>[/prefix]/dataset/<id>" and the activity as ref.
func (cu cloneURL) ckanIdentity() (Repo, string, bool) {
	segs := splitPath(cu.path)
	for i, s := range segs {
		if s != "dataset" || i+1 >= len(segs) {
			continue
		}
		ref := ""
		for j := i + 2; j+1 < len(segs); j++ {
			if segs[j] == "history" {
				ref = segs[j+1]
				break
			}
		}
		if ref == "" {
			for _, kv := range strings.Split(cu.query, "&") {
				if v, ok := strings.CutPrefix(kv, "activity_id="); ok {
					ref = decodeAll(v)
					break
				}
			}
		}
		p := strings.Join(segs[:i+2], "/")
		return Repo(strings.ToLower(cu.hostPort() + "/" + p)), ref, true
	}
	return "", "", false
}

func (cu cloneURL) hostPort() string {
	if cu.port == "" {
		return cu.host
	}
	return cu.host + ":" + cu.port
}

// gitLabPath is the lowercase project path; GitLab's "/-/" separates the
// project from tree/blob views.
func gitLabPath(segs []string) string {
	for i, s := range segs {
		if s == "-" {
			segs = segs[:i]
			break
		}
	}
	if len(segs) == 0 {
		return ""
	}
	segs[len(segs)-1] = stripGitSuffix(strings.ToLower(segs[len(segs)-1]))
	if segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	return strings.ToLower(strings.Join(segs, "/"))
}

// splitPath splits on "/", drops empty and "." segments and resolves ".."
// the way git's HTTP client and web servers do, so "a/x/../b" is a, b.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return out
}

// ParseRepoURL parses the repository URL BinderHub hands to repo2docker, as
// found in a build pod's "binder-repo" annotation or a user pod's
// BINDER_REPO_URL: "https://github.com/org/repo", a gist or GitLab ".git"
// URL, any git URL (http, https, git, ssh, "git@host:path"), a DOI for
// zenodo/figshare/dataverse, a hydroshare resource URL or a CKAN dataset URL.
func ParseRepoURL(u string) (Repo, error) {
	in := u
	s := strings.TrimSpace(u)
	if len(s) > maxInput {
		return "", errf(in[:64]+"...", "longer than %d bytes", maxInput)
	}
	if s == "" {
		return "", errf(in, "a repository URL is required")
	}
	if !strings.Contains(s, "://") && !scpLike.MatchString(s) {
		if doi, ok := cleanDOI(decodeAll(s)); ok && printable(doi) {
			r, _ := doiIdentity(doi)
			return r, nil
		}
	}
	cu, err := parseCloneURL(s)
	if err == nil && !gitSchemes[cu.scheme] {
		err = &Error{Reason: "unsupported repository URL scheme " + quote(cu.scheme) + ": expected http, https, git or ssh"}
	}
	var r Repo
	if err == nil {
		r, err = cu.identity()
	}
	if err == nil && !printable(string(r)) {
		err = &Error{Reason: "the repository name contains a space or control character once decoded"}
	}
	if err != nil {
		err.Input = in
		return "", err
	}
	return r, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// unquote is Python's urllib.parse.unquote for ASCII: "%XX" becomes the
// byte, anything else (including a malformed "%") stays as it is.
func unquote(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// decodeAll unquotes until nothing changes, so double- and triple-encoding
// name the same thing as the plain spelling. Bounded: each round shrinks
// the string, and maxDecode rounds are more than any client applies.
func decodeAll(s string) string {
	const maxDecode = 8
	for range maxDecode {
		d := unquote(s)
		if d == s {
			return s
		}
		s = d
	}
	return s
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// escape is Python's urllib.parse.quote(s, safe=""): everything but
// letters, digits and "_.-~" is percent-encoded (uppercase hex).
func escape(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '_' || c == '.' || c == '-' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}
