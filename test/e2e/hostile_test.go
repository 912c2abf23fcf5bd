package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/xds/ir"
)

// rawExchange sends req as written on a new connection to addr and reads
// one response; Go's client would refuse or clean up most of these.
func rawExchange(addr, req string) (*http.Response, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp, body, nil
}

// Hostile launch requests through a real Envoy: each gets a clear answer
// (a failed event that says what is wrong, or an HTTP error for what is
// not a launch at all) or a clean close; none lets a banned repository
// reach BinderHub, and the next normal launch works.
func TestHostileRequestsGetAClearAnswer(t *testing.T) {
	leakFree(t)
	// The gate checks bans on every spelling through the one spec parser,
	// as in serve and local; the edge answers the canonical spellings.
	s := startStack(t, options{policies: gate.PoliciesFunc(func(providerSpec string, _ time.Time) (gate.Policy, error) {
		sp, err := spec.Parse(providerSpec)
		if err != nil {
			return gate.Policy{}, err
		}
		p := gate.Policy{Key: sp.BuildKey(), Launch: gate.DefaultLaunch()}
		if sp.Repo == "github.com/evil/repo" {
			p.Ban = &gate.Ban{Message: "banned", Enforce: true}
		}
		return p, nil
	})})
	s.ctl.SetBans([]ir.Block{{PathPrefix: "/build/gh/evil/repo/", Class: ir.ClassBanned, StatusCode: 403, Message: "banned"}})
	s.waitRouteAcked()
	addr := strings.TrimPrefix(s.edgeURL, "http://")
	base := s.measure()
	get := func(target string, extra ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: binder.test\r\nAccept: text/event-stream\r\nConnection: close\r\n" + strings.Join(extra, "") + "\r\n"
	}
	many := func(n int, f func(int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i))
		}
		return b.String()
	}
	tests := map[string]struct {
		req string
		// want: "event" a 200 stream whose only event is failed with one
		// of these status codes; "status" an HTTP status >= 400;
		// "either" one or the other; a clean close is always accepted.
		want  string
		codes []int
	}{
		"dot segments around a banned repository":    {req: get("/build/gh/x/../evil/repo/HEAD"), want: "either", codes: []int{400, 403}},
		"encoded dot segments":                       {req: get("/build/gh/evil/%2e%2e/evil/repo/HEAD"), want: "either", codes: []int{400, 403}},
		"a traversal out of /build/":                 {req: get("/build/../../etc/passwd"), want: "either", codes: []int{400, 404}},
		"invalid percent-encoding":                   {req: get("/build/gh/%zz/x/HEAD"), want: "event", codes: []int{400}},
		"double percent-encoding of a banned repo":   {req: get("/build/gh/%2565vil/repo/HEAD"), want: "either", codes: []int{400, 403}},
		"an overlong percent-encoded spec":           {req: get("/build/gh/" + strings.Repeat("%41", 3000) + "/x/HEAD"), want: "either", codes: []int{400, 414, 431}},
		"a NUL byte in the path":                     {req: get("/build/gh/a%00b/c/HEAD"), want: "either", codes: []int{400}},
		"a raw control character in the path":        {req: get("/build/gh/a\x01b/c/HEAD"), want: "status"},
		"non-UTF-8 in the path":                      {req: get("/build/gh/a%ff%fe/c/HEAD"), want: "either", codes: []int{400}},
		"a 64 KiB path":                              {req: get("/build/gh/" + strings.Repeat("a", 64<<10) + "/x/HEAD"), want: "either", codes: []int{400, 414, 431}},
		"a 64 KiB header":                            {req: get("/build/gh/org/repo/HEAD", "X-Big: "+strings.Repeat("b", 64<<10)+"\r\n"), want: "status"},
		"10,000 query parameters":                    {req: get("/build/gh/evil/repo/HEAD?" + many(10000, func(i int) string { return fmt.Sprintf("p%d=%d&", i, i) })), want: "either", codes: []int{403, 414, 431}},
		"a header flood":                             {req: get("/build/gh/org/repo/HEAD", many(2000, func(i int) string { return fmt.Sprintf("X-H%d: v\r\n", i) })), want: "status"},
		"a dot segment before the provider":          {req: get("/build/./gh/evil/repo/HEAD"), want: "event", codes: []int{403}},
		"double-encoded dot segments":                {req: get("/build/gh/evil/%252e%252e/evil/repo/HEAD"), want: "either", codes: []int{400, 403}},
		"an encoded backslash traversal":             {req: get("/build/gh/..%5c..%5cetc/passwd/HEAD"), want: "either", codes: []int{400}},
		"overlong UTF-8 dots":                        {req: get("/build/gh/%c0%ae%c0%ae/evil/repo/HEAD"), want: "either", codes: []int{400}},
		"an encoded slash inside a banned owner":     {req: get("/build/gh/evil%2Frepo/HEAD"), want: "either", codes: []int{400, 403}},
		"raw non-UTF-8 bytes in the path":            {req: get("/build/gh/a\xff\xfe/c/HEAD"), want: "either", codes: []int{400}},
		"a raw NUL byte in the path":                 {req: get("/build/gh/a\x00b/c/HEAD"), want: "status"},
		"a spec just over the gate's limit":          {req: get("/build/gh/o/" + strings.Repeat("r", gate.MaxSpecBytes) + "/HEAD"), want: "either", codes: []int{400, 414}},
		"a NUL byte in a header":                     {req: get("/build/gh/org/repo/HEAD", "X-A: a\x00b\r\n"), want: "status"},
		"request smuggling: length and chunked":      {req: get("/build/gh/evil/repo/HEAD", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), want: "either", codes: []int{403}},
		"10,000 query parameters on a normal launch": {req: get("/build/gh/org/repo/HEAD?" + many(10000, func(i int) string { return fmt.Sprintf("p%d=%d&", i, i) })), want: "status"},
		"HTTP/1.0 to a banned repository":            {req: "GET /build/gh/evil/repo/HEAD HTTP/1.0\r\nHost: binder.test\r\nAccept: text/event-stream\r\n\r\n", want: "event", codes: []int{403}},
		"HTTP/1.0 without a Host":                    {req: "GET /build/gh/evil/repo/HEAD HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n", want: "either", codes: []int{403}},
		// Not launches: they pass through to BinderHub, which answers them
		// (fakebinder's serveBuildNotGet) with a 200 event stream.
		"POST on /build/":    {req: "POST /build/gh/org/repo/HEAD HTTP/1.1\r\nHost: binder.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", want: "event", codes: []int{400}},
		"OPTIONS on /build/": {req: "OPTIONS /build/gh/org/repo/HEAD HTTP/1.1\r\nHost: binder.test\r\nConnection: close\r\n\r\n", want: "either"},
		"HEAD on /build/":    {req: "HEAD /build/gh/org/repo/HEAD HTTP/1.1\r\nHost: binder.test\r\nConnection: close\r\n\r\n", want: "either"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body, err := rawExchange(addr, tc.req)
			if err != nil {
				// A clean close: the connection ended without an answer.
				t.Logf("closed: %v", err)
				return
			}
			event := resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
			var failed *sse.Payload
			if event {
				evs, _ := readEvents(strings.NewReader(string(body)))
				for i := range evs {
					if evs[i].Phase == sse.PhaseFailed {
						failed = &evs[i]
					}
					if evs[i].Phase == sse.PhaseReady || evs[i].Phase == sse.PhaseBuilt {
						t.Fatalf("a hostile request was launched: %+v", evs)
					}
				}
			}
			okCode := func(c int) bool {
				if len(tc.codes) == 0 {
					return c >= 400
				}
				for _, w := range tc.codes {
					if c == w {
						return true
					}
				}
				return false
			}
			switch {
			case event && failed != nil && tc.want != "status" && okCode(failed.StatusCode) && len(failed.Message) > 0 && len(body) < 4096:
			case !event && resp.StatusCode >= 400 && tc.want != "event" && len(body) < 8192:
			case failed == nil && resp.StatusCode < 300 && len(body) == 0 && (strings.HasPrefix(tc.req, "OPTIONS") || strings.HasPrefix(tc.req, "HEAD")):
				// BinderHub's own answer to OPTIONS/HEAD, passed through.
			default:
				t.Errorf("answer %d %q, body %d bytes %.300q; want %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), body, tc.want, tc.codes)
			}
		})
	}
	if n := s.binderHits.prefix("/build/gh/evil/"); n != 0 {
		t.Errorf("a banned repository reached BinderHub %d times", n)
	}
	if a := launch(s.ctx, s.edgeURL, "gh/org/repo/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("the next normal launch got %+v (err %v), want ready", a.events, a.err)
	}
	s.settle(t, base, 0)
}
