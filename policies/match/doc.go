// Package match decides which RepoBan and which LaunchPolicy apply to a
// launch spec or a repository, fast enough to sit on every launch request.
//
// Bans and selectors are compiled once into immutable indexes: repository
// entries go into a map keyed by spec.Repo (one lookup, however many bans
// there are), and BinderHub-compatible regexes are compiled once and
// pre-filtered by their literal prefix so that a check only runs the few
// regexes that could match.
//
// BinderHub matches banned_specs with Python's re.match(pattern, spec,
// re.IGNORECASE): anchored at the start, not at the end, case-insensitive,
// against the spec without its provider prefix. CompileRegex reproduces
// that with Go's RE2 engine and refuses Python-only syntax (look-around,
// back-references, atomic groups, possessive quantifiers, conditionals)
// with an error that says so, rather than silently matching something else.
//
// A regex is matched against every spelling of the spec (spec.Spelling): the
// raw spec as received, its canonical spelling (decoded, lowercase, no .git,
// no trailing slash), and its canonical spelling in every other provider that
// reaches the same repository. So "^ines/spacy-binder.*" for gh also stops
// gh/INES/spacy%2Dbinder/HEAD and git/https%3A%2F%2Fgithub.com%2Fines%2Fspacy-binder/HEAD.
//
// Precedence, so that the outcome never depends on map or file order:
//   - bans: the strongest mode wins (Enforce, then Warn, then Audit); on a tie
//     a repository entry beats a pattern, then the lower policy name wins;
//   - launch policies: the most specific selector wins (a repository entry,
//     then a pattern, then an empty catch-all selector); on a tie the higher
//     priority, then the lower policy name.
//
// This package is pure: it must never read files, talk to Kubernetes or
// know about the API types; policies/snapshot converts objects into its
// inputs.
package match
