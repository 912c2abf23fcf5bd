package gate

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/binderguard/binderguard/proxy/sse"
)

func TestUpstreamRequestCarriesTheClientsOwnHeaders(t *testing.T) {
	up, _ := url.Parse("http://binder:8585/base/")
	tests := map[string]struct {
		path, remote string
		header       http.Header
		token        string
		trusted      []netip.Prefix
		wantURL      string
		wantHeader   http.Header
		wantHost     string
	}{
		"end-to-end headers, Host and query pass unchanged": {
			path: "/build/gh/o/r/HEAD?build_token=abc&x=1", remote: "127.0.0.1:5000", token: "abc",
			header: http.Header{
				"Cookie": {"c=1"}, "Authorization": {"token t"}, "Origin": {"https://binder.test"},
				"X-Real-Ip": {"203.0.113.7"}, "X-Forwarded-For": {"203.0.113.7"}, "Accept": {"text/event-stream"},
			},
			wantURL: "http://binder:8585/base/build/gh/o/r/HEAD?build_token=abc&x=1",
			wantHeader: http.Header{
				"Cookie": {"c=1"}, "Authorization": {"token t"}, "Origin": {"https://binder.test"},
				"X-Real-Ip": {"203.0.113.7"}, "X-Forwarded-For": {"203.0.113.7"}, "Accept": {"text/event-stream"},
			},
			wantHost: "binder.test",
		},
		"hop-by-hop headers and Accept-Encoding are dropped": {
			path: "/build/gh/o/r/HEAD", remote: "127.0.0.1:5000",
			header:     http.Header{"Connection": {"X-Secret"}, "X-Secret": {"1"}, "Te": {"trailers"}, "Accept-Encoding": {"gzip"}, "Accept": {"text/event-stream"}},
			wantURL:    "http://binder:8585/base/build/gh/o/r/HEAD",
			wantHeader: http.Header{"Accept": {"text/event-stream"}},
			wantHost:   "binder.test",
		},
		"a fresher build token replaces the client's": {
			path: "/build/gh/o/r/HEAD?build_token=old", remote: "127.0.0.1:5000", token: "new",
			wantURL: "http://binder:8585/base/build/gh/o/r/HEAD?build_token=new", wantHeader: http.Header{}, wantHost: "binder.test",
		},
		"a build token the gate must not send is removed": {
			path: "/build/gh/o/r/HEAD?x=1&build_token=expired", remote: "127.0.0.1:5000", token: "",
			wantURL: "http://binder:8585/base/build/gh/o/r/HEAD?x=1", wantHeader: http.Header{}, wantHost: "binder.test",
		},
		"a build token sent twice is not smuggled past the gate's choice": {
			// BinderHub (tornado's get_argument) reads the last value.
			path: "/build/gh/o/r/HEAD?build_token=&build_token=head", remote: "127.0.0.1:5000", token: "",
			wantURL: "http://binder:8585/base/build/gh/o/r/HEAD", wantHeader: http.Header{}, wantHost: "binder.test",
		},
		"a build token sent twice is sent once, as the gate chose it": {
			path: "/build/gh/o/r/HEAD?build_token=abc&build_token=expired", remote: "127.0.0.1:5000", token: "abc",
			wantURL: "http://binder:8585/base/build/gh/o/r/HEAD?build_token=abc", wantHeader: http.Header{}, wantHost: "binder.test",
		},
		"percent-encoding of the spec is kept": {
			path: "/build/git/https%3A%2F%2Fgithub.com%2Fo%2Fr.git/HEAD", remote: "127.0.0.1:5000",
			wantURL: "http://binder:8585/base/build/git/https%3A%2F%2Fgithub.com%2Fo%2Fr.git/HEAD", wantHeader: http.Header{}, wantHost: "binder.test",
		},
		"an untrusted peer cannot choose its address": {
			path: "/build/gh/o/r/HEAD", remote: "198.51.100.4:5000", trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			header:     http.Header{"X-Real-Ip": {"1.2.3.4"}},
			wantURL:    "http://binder:8585/base/build/gh/o/r/HEAD",
			wantHeader: http.Header{"X-Real-Ip": {"198.51.100.4"}}, wantHost: "binder.test",
		},
		"a trusted peer's X-Real-Ip is believed": {
			path: "/build/gh/o/r/HEAD", remote: "10.1.2.3:5000", trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			header:     http.Header{"X-Real-Ip": {"1.2.3.4"}},
			wantURL:    "http://binder:8585/base/build/gh/o/r/HEAD",
			wantHeader: http.Header{"X-Real-Ip": {"1.2.3.4"}}, wantHost: "binder.test",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := &binderHub{base: up, trusted: tc.trusted}
			in := httptest.NewRequest(http.MethodGet, "http://binder.test"+tc.path, nil)
			in.RemoteAddr = tc.remote
			in.Header = tc.header.Clone()
			if in.Header == nil {
				in.Header = http.Header{}
			}
			out, err := h.request(t.Context(), in, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if out.URL.String() != tc.wantURL || out.Host != tc.wantHost {
				t.Errorf("url %s host %s, want %s %s", out.URL, out.Host, tc.wantURL, tc.wantHost)
			}
			if diff := cmp.Diff(tc.wantHeader, out.Header); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRingReplaysBoundedRecentEvents(t *testing.T) {
	ev := func(s string) sse.Event { return sse.Event{Data: []byte(s)} }
	r := newRing(3, 1<<20)
	_, c0, notify := r.since(0)
	r.add(ev("a"))
	select {
	case <-notify:
	default:
		t.Fatal("adding an event did not wake readers")
	}
	for _, s := range []string{"b", "c", "d"} {
		r.add(ev(s))
	}
	got, next, _ := r.since(c0)
	if diff := cmp.Diff([]sse.Event{ev("b"), ev("c"), ev("d")}, got); diff != "" || next != 4 {
		t.Errorf("a reader behind the ring skips to the oldest kept (-want +got):\n%s next %d", diff, next)
	}
	if got, _, _ := r.since(next); len(got) != 0 {
		t.Errorf("a reader at the head got %v", got)
	}
	if !r.contains([]byte("c")) || r.contains([]byte("a")) {
		t.Error("contains answers for the kept events only")
	}
	small := newRing(100, 3)
	small.add(ev("12"))
	small.add(ev("34"))
	if got, _, _ := small.since(0); len(got) != 1 || string(got[0].Data) != "34" {
		t.Errorf("the byte bound keeps the newest events: %v", got)
	}
}
