package fakebinder

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// acceptsEventStream mirrors BuildHandler.prepare: the Accept header is
// split on ";" and one part, stripped and lowercased, must be exactly
// "text/event-stream". (So "text/html, text/event-stream" is refused, as
// BinderHub refuses it.)
func acceptsEventStream(accept string) bool {
	for part := range strings.SplitSeq(accept, ";") {
		if strings.ToLower(strings.TrimSpace(part)) == "text/event-stream" {
			return true
		}
	}
	return false
}

// clientIP is the address BinderHub sees with tornado's xheaders=True:
// X-Real-Ip, else the rightmost X-Forwarded-For entry, else the peer
// address; a header value that is not an IP address is ignored.
func clientIP(h http.Header, remoteAddr string) string {
	peer := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		peer = host
	}
	ip := peer
	if xff := h.Get("X-Forwarded-For"); xff != "" {
		ip = strings.TrimSpace(xff[strings.LastIndex(xff, ",")+1:])
	}
	if xri := h.Get("X-Real-Ip"); xri != "" {
		ip = strings.TrimSpace(xri)
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return peer
	}
	return ip
}

// launchHost is BinderHub's binder_launch_host without a badge_base_url:
// "{protocol}://{host}{base_url}", the protocol honouring X-Scheme and
// X-Forwarded-Proto as tornado's xheaders do.
func launchHost(r *http.Request) string {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	for _, h := range []string{"X-Scheme", "X-Forwarded-Proto"} {
		if v := strings.ToLower(strings.TrimSpace(r.Header.Get(h))); v == "http" || v == "https" {
			proto = v
			break
		}
	}
	return proto + "://" + r.Host + "/"
}

// tokenOrigin is BaseHandler.token_origin: the Origin header's host[:port],
// else the Host header.
func tokenOrigin(origin, host string) string {
	if origin != "" {
		if u, err := url.Parse(origin); err == nil {
			return u.Host
		}
		return ""
	}
	return host
}

// errInvalidBuildToken is BinderHub's answer to a present but invalid
// build_token: 403 "Invalid build token".
var errInvalidBuildToken = errors.New("Invalid build token")

// checkBuildToken mirrors BaseHandler.check_build_token with
// build_token_check_origin on (BinderHub's default). It reports whether a
// token was present and valid; a present but invalid one (bad signature,
// expired, wrong aud, wrong origin) is errInvalidBuildToken, which
// BinderHub answers with a 403 failed event rather than ignoring it.
func checkBuildToken(secret, token, aud, origin string, now time.Time) (bool, error) {
	if token == "" {
		return false, nil
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims,
		func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithAudience(aud),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errInvalidBuildToken, err)
	}
	if got, _ := claims["origin"].(string); got != origin {
		return false, fmt.Errorf("%w: origin %q is not %q", errInvalidBuildToken, got, origin)
	}
	return true, nil
}
