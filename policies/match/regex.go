package match

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Regex is a BinderHub-compatible spec pattern compiled for Go: matched
// from the start of the text (Python re.match), case-insensitively.
type Regex struct {
	src    string
	re     *regexp.Regexp
	prefix string // folded literal prefix every match starts with ("" if none)
	needle string // folded literal every match contains ("" if none known)
	whole  string // see WholePrefix
}

// maxPrefix caps the literal prefix used for pre-filtering: longer prefixes
// do not filter better, and the cap bounds the number of length buckets.
const maxPrefix = 32

// pythonOnly lists syntax Python's re accepts and RE2 cannot run, with the
// name a user will recognise.
var pythonOnly = []struct{ token, name string }{
	{"(?=", "look-ahead (?=...)"},
	{"(?!", "negative look-ahead (?!...)"},
	{"(?<=", "look-behind (?<=...)"},
	{"(?<!", "negative look-behind (?<!...)"},
	{"(?P=", "named back-reference (?P=name)"},
	{"(?(", "conditional group (?(id)yes|no)"},
	{"(?>", "atomic group (?>...)"},
	{"(?#", "comment group (?#...)"},
	{"*+", "possessive quantifier *+"},
	{"++", "possessive quantifier ++"},
	{"?+", "possessive quantifier ?+"},
	{"}+", "possessive quantifier {m,n}+"},
}

// CompileRegex compiles a pattern written for BinderHub's banned_specs.
// Python's "\Z" (end of text) is accepted and means Go's "\z"; syntax only
// Python can run is refused with an error naming it.
func CompileRegex(src string) (*Regex, error) {
	if src == "" {
		return nil, fmt.Errorf("regex is empty")
	}
	translated, err := TranslatePython(src)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", src, err)
	}
	// Compiled on its own first: wrapped unchecked, "x)|(.*" would close
	// the anchoring group and match anywhere.
	if _, err := syntax.Parse(translated, syntax.Perl); err != nil {
		return nil, fmt.Errorf("regex %q does not compile: %w", src, err)
	}
	full := "(?i)^(?:" + translated + ")"
	re, err := regexp.Compile(full)
	if err != nil {
		return nil, fmt.Errorf("regex %q does not compile: %w", src, err)
	}
	parsed, err := syntax.Parse(full, syntax.Perl)
	if err != nil { // unreachable after Compile succeeded; keep the filter sound anyway
		return &Regex{src: src, re: re}, nil
	}
	simple := parsed.Simplify()
	r := &Regex{src: src, re: re, prefix: literalPrefix(simple), needle: requiredLiteral(simple)}
	if asWritten, err := syntax.Parse(translated, syntax.Perl); err == nil {
		r.whole = wholePrefix(asWritten.Simplify())
	}
	return r, nil
}

// WholePrefix returns the literal L, as written, when the pattern matches
// exactly the texts that start with L (ignoring case): "^evil/.*",
// "evil/", "evil/.*$". re.match anchors only at the start, so such a
// pattern is a prefix rule an Envoy prefix match can apply (in L's letter
// case). It returns "" for any other pattern.
func (r *Regex) WholePrefix() string { return r.whole }

// wholePrefix is WholePrefix on the pattern parsed without case folding
// (folding would store each letter as its smallest case variant).
func wholePrefix(re *syntax.Regexp) string {
	var subs []*syntax.Regexp
	var flatten func(*syntax.Regexp)
	flatten = func(re *syntax.Regexp) {
		switch re.Op {
		case syntax.OpCapture, syntax.OpConcat:
			for _, s := range re.Sub {
				flatten(s)
			}
		default:
			subs = append(subs, re)
		}
	}
	flatten(re)
	var lit strings.Builder
	i := 0
	for ; i < len(subs) && (subs[i].Op == syntax.OpBeginText || subs[i].Op == syntax.OpBeginLine); i++ {
	}
	for ; i < len(subs) && subs[i].Op == syntax.OpLiteral && subs[i].Flags&syntax.FoldCase == 0; i++ {
		lit.WriteString(string(subs[i].Rune))
	}
	if i < len(subs) && subs[i].Op == syntax.OpStar && (subs[i].Sub[0].Op == syntax.OpAnyChar || subs[i].Sub[0].Op == syntax.OpAnyCharNotNL) {
		i++
		for ; i < len(subs) && (subs[i].Op == syntax.OpEndText || subs[i].Op == syntax.OpEndLine); i++ {
		}
	}
	if i != len(subs) {
		return ""
	}
	return lit.String()
}

// MustCompileRegex is CompileRegex for patterns known to be valid (tests,
// built-in defaults); it panics on error.
func MustCompileRegex(src string) *Regex {
	r, err := CompileRegex(src)
	if err != nil {
		panic(err)
	}
	return r
}

// String is the pattern as written.
func (r *Regex) String() string { return r.src }

// MatchString reports whether the text starts with a match.
func (r *Regex) MatchString(s string) bool { return r.re.MatchString(s) }

// TranslatePython rewrites a Python re pattern into RE2 syntax: "\Z"
// becomes "\z"; Python-only constructs are refused. It walks the pattern
// once, skipping escaped characters and character classes so that "[(?=]"
// or "\(?=" are not mistaken for a look-ahead. The result is not anchored
// or made case-insensitive; CompileRegex does that.
func TranslatePython(src string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '\\' && i+1 < len(src) {
			n := src[i+1]
			switch {
			case n == 'Z' && !inClass:
				b.WriteString(`\z`)
			case n >= '1' && n <= '9' && !inClass:
				return "", fmt.Errorf("back-reference \\%c is Python-only syntax that Go's RE2 engine cannot run; rewrite the pattern or list the repositories under repos", n)
			default:
				b.WriteByte(c)
				b.WriteByte(n)
			}
			i++
			continue
		}
		if inClass {
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
			continue
		}
		if c == '[' {
			inClass = true
			b.WriteByte(c)
			// a ']' right after '[' or '[^' is a literal
			if i+1 < len(src) && src[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(src) && src[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		}
		for _, p := range pythonOnly {
			if strings.HasPrefix(src[i:], p.token) {
				return "", fmt.Errorf("%s is Python-only syntax that Go's RE2 engine cannot run; rewrite the pattern or list the repositories under repos", p.name)
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// literalPrefix returns the folded literal every match must start with.
func literalPrefix(re *syntax.Regexp) string {
	var b strings.Builder
	var walk func(*syntax.Regexp) bool // false: stop, nothing fixed follows
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpConcat:
			for _, sub := range re.Sub {
				if !walk(sub) {
					return false
				}
			}
			return true
		case syntax.OpCapture:
			return walk(re.Sub[0])
		case syntax.OpBeginText, syntax.OpEmptyMatch:
			return true
		case syntax.OpLiteral:
			for _, r := range re.Rune {
				if b.Len()+utf8.RuneLen(r) > maxPrefix {
					return false
				}
				b.WriteRune(foldRune(r))
			}
			return true
		default:
			return false
		}
	}
	walk(re)
	return b.String()
}

// requiredLiteral returns the longest folded literal that every match
// contains: a literal that is a required part of the top-level sequence,
// such as "XMRIG" in ".*xmrig.*".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpCapture:
		return requiredLiteral(re.Sub[0])
	case syntax.OpLiteral:
		var b strings.Builder
		for _, r := range re.Rune {
			b.WriteRune(foldRune(r))
		}
		return b.String()
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// foldRune maps every rune of a case-folding orbit (k, K, and the Kelvin
// sign; s, S and long s) to one representative, the smallest, so that two
// strings that (?i) treats as equal fold to the same bytes.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// fold folds a whole string with foldRune, without allocating for ASCII
// text that is already upper case.
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			return foldSlow(s)
		}
	}
	return s
}

func foldSlow(s string) string {
	buf := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			for _, r := range s[i:] {
				buf = utf8.AppendRune(buf, foldRune(r))
			}
			break
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return string(buf)
}
