package translate

import (
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/xds/ir"
)

// answerTo resolves path as Envoy does: the longest key of the route
// configuration's prefix map; on a launch route, the longest ban of a slot
// that route enables ("slot/ban"), else the route's name.
func answerTo(t *testing.T, res *Resources, path string) string {
	t.Helper()
	m := prefixMap(res.Routes[0])
	best := ""
	for p := range m {
		if strings.HasPrefix(path, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return RoutePassThrough
	}
	om := m[best]
	name := om.GetAction().GetName()
	if nested := om.GetMatcher(); nested != nil {
		name = nested.GetOnNoMatch().GetAction().GetName()
	}
	if name != RouteLaunch {
		return name
	}
	ban := ""
	for _, x := range res.Extensions {
		if !routeEnables(t, om, x.GetName()) {
			continue
		}
		for p := range shardMap(t, x) {
			if strings.HasPrefix(path, p) && len(p) > len(ban) {
				ban = p
			}
		}
	}
	if ban != "" {
		return "slot/" + banActionName
	}
	return RouteLaunch
}

// A hot spec's full path is longer than the ban of its repository, owner
// or pattern, so in a longest-prefix map it would win: a banned repository
// that is hot got 429/503 at the edge instead of its ban. The ban must
// win, whichever of its forms covers the hot path.
func TestBanWinsOverHotSpecUnderIt(t *testing.T) {
	const path = "/build/gh/a/b/HEAD"
	ban := func(p string, retry time.Duration) ir.Block {
		return ir.Block{PathPrefix: p, Class: ir.ClassBanned, StatusCode: 403, Message: "no", RetryAfter: retry}
	}
	saturated := ir.Block{PathPrefix: path, Class: ir.ClassSaturated, StatusCode: 429, Message: "full", RetryAfter: 30 * time.Second}
	open := ir.Block{PathPrefix: path, Class: ir.ClassBreakerOpen, StatusCode: 503, Message: "later", RetryAfter: time.Minute}
	other := ir.Block{PathPrefix: "/build/gh/a/bc/HEAD", Class: ir.ClassSaturated, StatusCode: 429, Message: "full", RetryAfter: 30 * time.Second}
	tests := map[string]struct {
		blocks []ir.Block
		want   map[string]string // path → answer
	}{
		"a repository ban beats its saturated spec": {
			blocks: []ir.Block{ban("/build/gh/a/b/", 0), saturated},
			want:   map[string]string{path: "slot/ban"},
		},
		"a repository ban beats its open breaker": {
			blocks: []ir.Block{ban("/build/gh/a/b/", 0), open},
			want:   map[string]string{path: "slot/ban"},
		},
		"an owner-wide ban beats a hot spec of the owner": {
			blocks: []ir.Block{ban("/build/gh/a/", 0), saturated, other},
			want:   map[string]string{path: "slot/ban", other.PathPrefix: "slot/ban"},
		},
		"a ban with a Retry-After, a route itself, beats a hot spec": {
			blocks: []ir.Block{ban("/build/gh/a/b/", time.Minute), saturated},
			want:   map[string]string{path: "edge_banned"},
		},
		"a pattern ban ending mid-segment covers what it prefixes": {
			blocks: []ir.Block{ban("/build/gh/a/b", 0), other},
			want:   map[string]string{other.PathPrefix: "slot/ban", "/build/gh/a/b/HEAD": "slot/ban"},
		},
		"a hot spec no ban covers stays hot": {
			blocks: []ir.Block{ban("/build/gh/a/b/", 0), other},
			want:   map[string]string{path: "slot/ban", other.PathPrefix: "edge_saturated"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := baseEdge()
			e.Blocks = tc.blocks
			full, err := Translate(e)
			if err != nil {
				t.Fatal(err)
			}
			// Incremental, with the ban arriving after the hot spec, and
			// going again: the hot spec must come back.
			inc := NewIncremental()
			var bans, hot []ir.Block
			for _, b := range tc.blocks {
				if b.Class == ir.ClassBanned {
					bans = append(bans, b)
				} else {
					hot = append(hot, b)
				}
			}
			e.Blocks = hot
			before, err := inc.Translate(e)
			if err != nil {
				t.Fatal(err)
			}
			e.Blocks = tc.blocks
			edited, err := inc.Translate(e)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				if got := answerTo(t, full, p); got != want {
					t.Errorf("Translate: %s is answered by %s, want %s", p, got, want)
				}
				if got := answerTo(t, edited, p); got != want {
					t.Errorf("Incremental, ban after hot spec: %s is answered by %s, want %s", p, got, want)
				}
			}
			e.Blocks = hot
			after, err := inc.Translate(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hot {
				if got, was := answerTo(t, after, h.PathPrefix), answerTo(t, before, h.PathPrefix); got != was || got != routeEdgePrefix+string(h.Class) {
					t.Errorf("Incremental, ban gone: %s is answered by %s, want %s as before the ban", h.PathPrefix, got, was)
				}
			}
		})
	}
}
