package match

import (
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/spec"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func mustSpec(t testing.TB, s string) spec.Spec {
	t.Helper()
	sp, err := spec.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return sp
}

func mustRepo(t testing.TB, s string) spec.Repo {
	t.Helper()
	r, err := spec.ParseRepo(s)
	if err != nil {
		t.Fatalf("ParseRepo(%q): %v", s, err)
	}
	return r
}

func TestCompileRegexFollowsPythonReMatch(t *testing.T) {
	tests := map[string]struct {
		pattern string
		text    string
		match   bool
	}{
		"anchored at the start":             {"ines/spacy", "xines/spacy/HEAD", false},
		"not anchored at the end":           {"ines/spacy", "ines/spacy-binder/HEAD", true},
		"case-insensitive":                  {"^INES/Spacy-Binder.*", "ines/spacy-binder/HEAD", true},
		"dot-star anywhere":                 {".*xmrig.*", "someone/XMRig-miner/HEAD", true},
		"Python's \\Z is end of text":       {`ines/spacy\Z`, "ines/spacy", true},
		"\\Z does not match before more":    {`ines/spacy\Z`, "ines/spacy/HEAD", false},
		"an escaped slash":                  {`^ines\/spacy`, "ines/spacy/HEAD", true},
		"an alternation anchors as a whole": {"a/b|c/d", "x/c/d", false},
		"an alternation's second branch":    {"a/b|c/d", "c/d/HEAD", true},
		"a class with a parenthesis":        {`^[(?=]x`, "(x", true},
		"named groups in Python spelling":   {`^(?P<org>ines)/`, "ines/x", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			re, err := CompileRegex(tc.pattern)
			if err != nil {
				t.Fatalf("CompileRegex(%q): %v", tc.pattern, err)
			}
			if got := re.MatchString(tc.text); got != tc.match {
				t.Errorf("%q.MatchString(%q) = %v, want %v", tc.pattern, tc.text, got, tc.match)
			}
		})
	}
}

func TestCompileRegexRefusesPythonOnlySyntax(t *testing.T) {
	tests := map[string]struct{ pattern, says string }{
		"a negative look-ahead (BinderHub's allow-list idiom)": {`^(?!myorg\/.*).*$`, "negative look-ahead"},
		"a look-ahead":            {`^a(?=b)`, "look-ahead"},
		"a look-behind":           {`(?<=a)b`, "look-behind"},
		"a back-reference":        {`^(a)\1`, "back-reference"},
		"an atomic group":         {`^(?>a)`, "atomic group"},
		"a possessive quantifier": {`^a*+b`, "possessive"},
		"an unbalanced group":     {`^(a`, "does not compile"},
		"an empty pattern":        {``, "empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := CompileRegex(tc.pattern)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("CompileRegex(%q) error = %v, want one saying %q", tc.pattern, err, tc.says)
			}
		})
	}
}

func TestLiteralPrefilterIsSound(t *testing.T) {
	tests := map[string]struct{ pattern, prefix, needle string }{
		"a plain prefix":          {"^ines/spacy-binder.*", "INES/SPACY-BINDER", "INES/SPACY-BINDER"},
		"without a caret":         {"ines/x", "INES/X", "INES/X"},
		"stops at a class":        {"^ab[cd]", "AB", "AB"},
		"stops at an alternation": {"^a|b", "", ""},
		"a needle for dot-star":   {".*xmrig.*", "", "XMRIG"},
		"the longest needle":      {".*ab.*xmrig[0-9]", "", "XMRIG"},
		"no needle in an option":  {".*(xmrig)?", "", ""},
		"stops at an optional":    {"^abc?d", "AB", "AB"},
		"through a capture":       {"^(ines)/x", "INES/X", "INES"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			re := MustCompileRegex(tc.pattern)
			if re.prefix != tc.prefix || re.needle != tc.needle {
				t.Errorf("prefilter(%q) = prefix %q needle %q, want %q %q", tc.pattern, re.prefix, re.needle, tc.prefix, tc.needle)
			}
		})
	}
}

func pat(provider, re string) Pattern {
	return Pattern{Provider: provider, Regex: MustCompileRegex(re)}
}

func TestBanCheck(t *testing.T) {
	demo := mustRepo(t, "gh/jupyterlab/jupyterlab-demo")
	bans := []Ban{
		{Policy: "RepoBan/binder/jupyterlab-demo", Message: "being rebuilt", Repos: []spec.Repo{demo},
			Expires: t0.Add(time.Hour)},
		{Policy: "RepoBan/binder/imported", Patterns: []Pattern{pat("gh", "^ines/spacy-binder.*"), pat("", ".*xmrig.*"),
			pat("git", "^https%3A%2F%2Fgitlab.example.org%2Fbad")}},
		{Policy: "RepoBan/binder/audit-only", Mode: ModeAudit, Repos: []spec.Repo{mustRepo(t, "gh/watched/repo")}},
		{Policy: "RepoBan/binder/warn-pattern", Mode: ModeWarn, Patterns: []Pattern{pat("gh", "^watched/")}},
	}
	ix := NewBanIndex(bans)
	tests := map[string]struct {
		spec   string
		now    time.Time
		policy string // "" = not banned
		mode   Mode
		rule   string
	}{
		"the banned repository":                                       {spec: "gh/jupyterlab/jupyterlab-demo/HEAD", policy: "RepoBan/binder/jupyterlab-demo", rule: "repo github.com/jupyterlab/jupyterlab-demo"},
		"the banned repository at another ref":                        {spec: "gh/jupyterlab/jupyterlab-demo/v1.0", policy: "RepoBan/binder/jupyterlab-demo"},
		"the banned repository in upper case":                         {spec: "gh/JupyterLab/JupyterLab-Demo/HEAD", policy: "RepoBan/binder/jupyterlab-demo"},
		"the banned repository percent-encoded":                       {spec: "gh/jupyterlab/jupyterlab%252Ddemo/HEAD", policy: "RepoBan/binder/jupyterlab-demo"},
		"the banned repository through git/":                          {spec: "git/https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/main", policy: "RepoBan/binder/jupyterlab-demo"},
		"the banned repository after expiry":                          {spec: "gh/jupyterlab/jupyterlab-demo/HEAD", now: t0.Add(2 * time.Hour)},
		"a fork of the banned repository":                             {spec: "gh/someone/jupyterlab-demo/HEAD"},
		"a repository with the banned name as prefix":                 {spec: "gh/jupyterlab/jupyterlab-demo2/HEAD"},
		"a pattern hit":                                               {spec: "gh/ines/spacy-binder/HEAD", policy: "RepoBan/binder/imported", rule: "pattern gh ^ines/spacy-binder.*"},
		"a pattern hit in another case":                               {spec: "gh/INES/Spacy-Binder/HEAD", policy: "RepoBan/binder/imported"},
		"a pattern hit percent-encoded":                               {spec: "gh/ines/spacy%2Dbinder/HEAD", policy: "RepoBan/binder/imported"},
		"a gh pattern hit through git/":                               {spec: "git/git%40github.com%3Aines%2Fspacy-binder.git/HEAD", policy: "RepoBan/binder/imported"},
		"a gh pattern does not apply to gitlab":                       {spec: "gl/ines%2Fspacy-binder/HEAD"},
		"a pattern near-miss (other owner)":                           {spec: "gh/ines2/spacy-binder/HEAD"},
		"an unscoped pattern hits every provider":                     {spec: "gl/group%2Fxmrig-miner/HEAD", policy: "RepoBan/binder/imported"},
		"a git pattern hits the canonical URL":                        {spec: "git/HTTPS%3A%2F%2Fgitlab.example.org%2FBad%2Frepo.git/HEAD", policy: "RepoBan/binder/imported"},
		"audit repo entry beats a warn pattern? no, warn is stronger": {spec: "gh/watched/repo/HEAD", policy: "RepoBan/binder/warn-pattern", mode: ModeWarn},
		"warn pattern alone":                                          {spec: "gh/watched/other/HEAD", policy: "RepoBan/binder/warn-pattern", mode: ModeWarn},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			hit, ok := ix.Check(mustSpec(t, tc.spec), now)
			if tc.policy == "" {
				if ok {
					t.Fatalf("Check(%q) = %+v, want no ban", tc.spec, hit)
				}
				return
			}
			if !ok || hit.Policy != tc.policy {
				t.Fatalf("Check(%q) = %+v, %v; want policy %s", tc.spec, hit, ok, tc.policy)
			}
			mode := tc.mode
			if mode == "" {
				mode = ModeEnforce
			}
			if hit.Mode != mode || (tc.rule != "" && hit.Rule != tc.rule) || hit.Message == "" {
				t.Errorf("Check(%q) = %+v, want mode %s rule %q and a message", tc.spec, hit, mode, tc.rule)
			}
		})
	}
}

func TestBanCheckRepoUsesPatternsToo(t *testing.T) {
	ix := NewBanIndex([]Ban{{Policy: "RepoBan/ns/p", Patterns: []Pattern{pat("gh", "^ines/spacy-binder.*")}}})
	r, err := spec.ParseRepoURL("https://github.com/ines/spacy-binder")
	if err != nil {
		t.Fatal(err)
	}
	if hit, ok := ix.CheckRepo(r, t0); !ok || hit.Policy != "RepoBan/ns/p" {
		t.Errorf("CheckRepo(%q) = %+v, %v; want the pattern ban", r, hit, ok)
	}
	if hit, ok := ix.CheckRepo("github.com/ines/other", t0); ok {
		t.Errorf("CheckRepo(other) = %+v, want none", hit)
	}
}

func TestDefaultMessageIsBinderHubs(t *testing.T) {
	ix := NewBanIndex([]Ban{{Policy: "RepoBan/ns/p", Repos: []spec.Repo{"github.com/o/r"}}})
	hit, _ := ix.Check(mustSpec(t, "gh/o/r/HEAD"), t0)
	if want := "Sorry, o/r/HEAD is not allowed to launch. Please contact admins for more info!"; hit.Message != want {
		t.Errorf("message = %q, want %q", hit.Message, want)
	}
}

func TestBanPrecedenceIsDeterministic(t *testing.T) {
	r := spec.Repo("github.com/o/r")
	tests := map[string]struct {
		bans   []Ban
		policy string
	}{
		"enforce beats warn whatever the order": {
			bans:   []Ban{{Policy: "RepoBan/a/warn", Mode: ModeWarn, Repos: []spec.Repo{r}}, {Policy: "RepoBan/z/enf", Repos: []spec.Repo{r}}},
			policy: "RepoBan/z/enf",
		},
		"the lower name wins a tie": {
			bans:   []Ban{{Policy: "RepoBan/b/x", Repos: []spec.Repo{r}}, {Policy: "RepoBan/a/x", Repos: []spec.Repo{r}}},
			policy: "RepoBan/a/x",
		},
		"a repository entry beats a pattern of the same mode": {
			bans:   []Ban{{Policy: "RepoBan/a/pat", Patterns: []Pattern{pat("", "^o/r")}}, {Policy: "RepoBan/z/repo", Repos: []spec.Repo{r}}},
			policy: "RepoBan/z/repo",
		},
		"an expired enforce ban leaves the warn ban": {
			bans: []Ban{{Policy: "RepoBan/a/old", Repos: []spec.Repo{r}, Expires: t0.Add(-time.Second)},
				{Policy: "RepoBan/b/warn", Mode: ModeWarn, Repos: []spec.Repo{r}}},
			policy: "RepoBan/b/warn",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, bans := range [][]Ban{tc.bans, {tc.bans[1], tc.bans[0]}} {
				hit, ok := NewBanIndex(bans).Check(mustSpec(t, "gh/o/r/HEAD"), t0)
				if !ok || hit.Policy != tc.policy {
					t.Errorf("Check = %+v, %v; want %s", hit, ok, tc.policy)
				}
			}
		})
	}
}

func TestLaunchSelectionMostSpecificWins(t *testing.T) {
	cands := []LaunchCandidate{
		{Policy: "LaunchPolicy/ns/default"},
		{Policy: "LaunchPolicy/ns/high-default", Priority: 100},
		{Policy: "LaunchPolicy/ns/popular", Repos: []spec.Repo{"github.com/jupyterlab/jupyterlab-demo"}},
		{Policy: "LaunchPolicy/ns/popular-b", Repos: []spec.Repo{"github.com/jupyterlab/jupyterlab-demo"}},
		{Policy: "LaunchPolicy/ns/binder-examples", Patterns: []Pattern{pat("gh", "^binder-examples/")}},
		{Policy: "LaunchPolicy/ns/binder-examples-hi", Priority: 5, Patterns: []Pattern{pat("gh", "^binder-examples/req")}},
	}
	ix := NewLaunchIndex(cands)
	tests := map[string]struct {
		spec   string
		policy string
		how    Specificity
	}{
		"a repository entry beats patterns and catch-alls, lower name on a tie": {"gh/JupyterLab/jupyterlab-demo/HEAD", "LaunchPolicy/ns/popular", ByRepo},
		"a repository entry through git/":                                       {"git/https%3A%2F%2Fgithub.com%2Fjupyterlab%2Fjupyterlab-demo/HEAD", "LaunchPolicy/ns/popular", ByRepo},
		"a pattern beats a catch-all of higher priority":                        {"gh/binder-examples/conda/HEAD", "LaunchPolicy/ns/binder-examples", ByPattern},
		"the higher priority among patterns":                                    {"gh/binder-examples/requirements/HEAD", "LaunchPolicy/ns/binder-examples-hi", ByPattern},
		"the higher-priority catch-all":                                         {"gh/someone/else/HEAD", "LaunchPolicy/ns/high-default", ByCatchAll},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pos, how, ok := ix.Select(mustSpec(t, tc.spec))
			if !ok || cands[pos].Policy != tc.policy || how != tc.how {
				t.Errorf("Select(%q) = %v %v %v, want %s by %v", tc.spec, pos, how, ok, tc.policy, tc.how)
			}
		})
	}
	if _, _, ok := NewLaunchIndex(nil).Select(mustSpec(t, "gh/o/r/HEAD")); ok {
		t.Error("an empty index selected a policy")
	}
}

// The literal pre-filter must never change an answer: compare the indexed
// search with running every regex on every spelling.
func TestPrefilterAgreesWithBruteForce(t *testing.T) {
	patterns := []string{"^ines/spacy.*", ".*xmrig.*", "^(a|b)/c", "^k/", "^s/x", ".*miner", "^https%3A%2F%2Fgithub",
		"^[A-Z]+/", `^o/r\Z`, "^ab?c", "^.*/HEAD$", "^café/"}
	texts := []string{"ines/spacy-binder/HEAD", "INES/SPACY", "x/XMRig/HEAD", "a/c", "b/c", "c/c", "\u212a/x", "\u017f/x",
		"some/miner", "https%3a%2f%2fgithub.com%2fo%2fr/HEAD", "o/r", "o/r/x", "ac", "abc", "CAFÉ/x", "", "%"}
	var entries []patternEntry
	for i, p := range patterns {
		entries = append(entries, patternEntry{pattern: pat("", p), order: i})
	}
	ps := newPatternSet(entries)
	for _, text := range texts {
		sp := []spec.Spelling{{Provider: "gh", Text: text}}
		want := -1
		for i, p := range patterns {
			if MustCompileRegex(p).MatchString(text) {
				want = i
				break
			}
		}
		if got := ps.best(sp, nil); got != want {
			t.Errorf("best(%q) = %d, brute force = %d", text, got, want)
		}
	}
}

func TestWholePrefixIsOnlyForPrefixRules(t *testing.T) {
	for src, want := range map[string]string{
		"^evil/.*":      "evil/",
		"evil/":         "evil/",
		"Evil/.*$":      "Evil/",
		`^evil\.org/.*`: "evil.org/",
		"(evil/).*":     "evil/",
		"^evil/$":       "",
		".*xmrig.*":     "",
		"evil/[a-z]+":   "",
		"evil|good":     "",
		"(?i)evil":      "",
		"evil/.+":       "",
	} {
		if got := MustCompileRegex(src).WholePrefix(); got != want {
			t.Errorf("WholePrefix(%q) = %q, want %q", src, got, want)
		}
	}
}
