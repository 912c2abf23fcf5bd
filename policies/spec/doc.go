// Package spec turns what BinderHub is asked to launch into one canonical
// repository identity, so that bans, launch policies, the launch gate, the
// Envoy edge and the admission webhook all agree on "which repository is
// this".
//
// Three inputs are understood:
//
//   - a launch spec, the path after "/build/" ("gh/org/repo/ref"): Parse;
//   - a BINDER_REQUEST / BINDER_PERSISTENT_REQUEST value ("v2/gh/org/repo/ref"): ParseRequest;
//   - the repository URL BinderHub gives repo2docker, found on build pods in the
//     "binder-repo" annotation and on user pods in BINDER_REPO_URL: ParseRepoURL.
//
// Provider rules follow binderhub/repoproviders.py (gh, gist, git, gl, zenodo,
// figshare, hydroshare, dataverse, ckan) and then go one step further, because
// a ban must not be evadable by spelling one repository another way:
//
//   - Repo identities are lowercase for every provider. GitHub, GitLab, Gitea,
//     Forgejo and Bitbucket resolve owner and project names case-insensitively,
//     DOIs are case-insensitive by definition and CKAN dataset names are
//     lowercase. On a bare git server that is case-sensitive, a ban then covers
//     both spellings, which is the safe side.
//   - Percent-encoding is decoded until nothing changes (so "%2D", "%252D" and
//     "-" are one name), a trailing "/" and any ".git" suffix are dropped.
//   - The same GitHub repository reached through the git provider
//     (git/https%3A%2F%2Fgithub.com%2FOrg%2FRepo.git/HEAD, http://, git://,
//     ssh://, git@github.com:Org/Repo, www.github.com, a port, user info) has
//     the same identity as gh/org/repo; likewise gitlab.com URLs and gl/, gist
//     URLs and gist/. A gist's identity is its id alone: the user name in a
//     gist spec is not used by BinderHub to fetch it.
//   - DOI providers (zenodo, figshare, dataverse) share "doi.org/<doi>"; a
//     figshare version suffix (".v3") is the ref, so a ban covers every version.
//
// Collapse keys (Spec.BuildKey) go the other way and keep letter case,
// because BinderHub hashes the build slug before lowercasing: Org/Repo and
// org/repo are two builds there, and the gate must not hold one for the other.
//
// A site whose BinderHub has extra repo providers names their prefixes in a
// Parser; their specs are taken whole (see Parser), since only the
// provider's own code knows how to read them.
//
// Invalid input yields *Error with a message fit to show a user. A spec that
// does not parse is one BinderHub could not launch either; callers should
// reject it rather than pass it through, so that no spelling this package
// does not understand can reach BinderHub around a ban.
//
// This package is pure: it must never do I/O, resolve refs or look anything
// up on the network.
package spec
