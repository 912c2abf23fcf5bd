package fakebinder

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAcceptsEventStream(t *testing.T) {
	tests := map[string]struct {
		accept string
		want   bool
	}{
		"the JS client's header is accepted":                {accept: "text/event-stream", want: true},
		"case and parameters after ';' do not matter":       {accept: "Text/Event-Stream; charset=utf-8", want: true},
		"a missing header is refused":                       {accept: "", want: false},
		"a browser's default Accept is refused":             {accept: "text/html,application/xhtml+xml,*/*;q=0.8", want: false},
		"a comma list is refused, as BinderHub splits on ;": {accept: "text/html, text/event-stream", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := acceptsEventStream(tc.accept); got != tc.want {
				t.Errorf("acceptsEventStream(%q) = %v; want %v", tc.accept, got, tc.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	tests := map[string]struct {
		xri, xff, remote string
		want             string
	}{
		"the peer address when there are no headers": {remote: "10.0.0.1:5555", want: "10.0.0.1"},
		"X-Real-Ip wins over everything":             {xri: "198.51.100.7", xff: "203.0.113.1", remote: "10.0.0.1:1", want: "198.51.100.7"},
		"else the rightmost X-Forwarded-For entry":   {xff: "203.0.113.1, 192.0.2.9", remote: "10.0.0.1:1", want: "192.0.2.9"},
		"a header that is not an IP is ignored":      {xri: "nonsense", remote: "10.0.0.1:1", want: "10.0.0.1"},
		"IPv6 peers keep their address":              {remote: "[::1]:80", want: "::1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tc.xri != "" {
				h.Set("X-Real-Ip", tc.xri)
			}
			if tc.xff != "" {
				h.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientIP(h, tc.remote); got != tc.want {
				t.Errorf("clientIP = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestTokenOrigin(t *testing.T) {
	tests := map[string]struct{ origin, host, want string }{
		"the Origin header's host and port":     {origin: "https://mybinder.org:8443", host: "x", want: "mybinder.org:8443"},
		"the Host header when Origin is absent": {host: "mybinder.org", want: "mybinder.org"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tokenOrigin(tc.origin, tc.host); got != tc.want {
				t.Errorf("tokenOrigin = %q; want %q", got, tc.want)
			}
		})
	}
}

const testSecret = "s3cret"

func signToken(t testing.TB, secret string, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	var key any = []byte(secret)
	if method == jwt.SigningMethodNone {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

func TestCheckBuildToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := jwt.MapClaims{"aud": "gh/org/repo/HEAD", "origin": "mybinder.org", "exp": now.Add(300 * time.Second).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := map[string]struct {
		token   func(t testing.TB) string
		wantOK  bool
		wantErr bool
	}{
		"no token is no token, not an error": {token: func(testing.TB) string { return "" }},
		"a valid token is accepted": {
			token: func(t testing.TB) string { return signToken(t, testSecret, jwt.SigningMethodHS256, good) }, wantOK: true,
		},
		"an expired token is invalid": {
			token: func(t testing.TB) string {
				return signToken(t, testSecret, jwt.SigningMethodHS256, with("exp", now.Add(-time.Second).Unix()))
			},
			wantErr: true,
		},
		"a token for another spec is invalid": {
			token: func(t testing.TB) string {
				return signToken(t, testSecret, jwt.SigningMethodHS256, with("aud", "gh/org/other/HEAD"))
			},
			wantErr: true,
		},
		"a token without an audience is invalid": {
			token:   func(t testing.TB) string { return signToken(t, testSecret, jwt.SigningMethodHS256, with("aud", nil)) },
			wantErr: true,
		},
		"a token from another origin is invalid": {
			token: func(t testing.TB) string {
				return signToken(t, testSecret, jwt.SigningMethodHS256, with("origin", "evil.example"))
			},
			wantErr: true,
		},
		"a token signed with another secret is invalid": {
			token:   func(t testing.TB) string { return signToken(t, "other", jwt.SigningMethodHS256, good) },
			wantErr: true,
		},
		"an unsigned token is invalid": {
			token:   func(t testing.TB) string { return signToken(t, "", jwt.SigningMethodNone, good) },
			wantErr: true,
		},
		"garbage is invalid": {token: func(testing.TB) string { return "not.a.jwt" }, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ok, err := checkBuildToken(testSecret, tc.token(t), "gh/org/repo/HEAD", "mybinder.org", now)
			if ok != tc.wantOK || (err != nil) != tc.wantErr {
				t.Fatalf("checkBuildToken = %v, %v; want ok %v, error %v", ok, err, tc.wantOK, tc.wantErr)
			}
			if err != nil && !errors.Is(err, errInvalidBuildToken) {
				t.Errorf("error %v is not errInvalidBuildToken", err)
			}
		})
	}
}
