package gate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// hopHeaders are connection-specific (RFC 9110 7.6.1) and never forwarded.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// NewTransport is the upstream transport the gate uses unless told
// otherwise: HTTP/1.1 (what BinderHub's tornado speaks), many kept-alive
// connections because every launch stream pins one, and no overall
// timeout because a launch stream lasts as long as its build; each
// request is cancelled with its client's context instead.
func NewTransport() *http.Transport {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:             &p,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		DisableCompression:    true,
	}
}

// binderHub sends launches to BinderHub on behalf of their clients, and
// words for the user what went wrong with those requests
// (upstreamfault.go).
type binderHub struct {
	base    *url.URL
	client  *http.Client
	trusted []netip.Prefix // Config.TrustedPeers
	// Config.UpstreamHeaderTimeout and Config.UpstreamIdleTimeout.
	headerTimeout, idleTimeout time.Duration
}

// request builds the request the gate sends to BinderHub on behalf
// of client request in: same path and query, except that buildToken is
// the build_token it carries (none when empty), same end-to-end headers
// including Host, Cookie, Authorization, Origin, X-Real-Ip and
// X-Forwarded-For.
func (h *binderHub) request(ctx context.Context, in *http.Request, buildToken string) (*http.Request, error) {
	u := *h.base
	u.Path = strings.TrimSuffix(h.base.Path, "/") + in.URL.Path
	u.RawPath = strings.TrimSuffix(h.base.EscapedPath(), "/") + in.URL.EscapedPath()
	q := in.URL.RawQuery
	// Rewritten unless it holds exactly buildToken: BinderHub reads the
	// last build_token of a query, the gate the first.
	if v := in.URL.Query(); len(v["build_token"]) > 1 || buildToken != v.Get("build_token") {
		if buildToken == "" {
			v.Del("build_token")
		} else {
			v.Set("build_token", buildToken)
		}
		q = v.Encode()
	}
	u.RawQuery = q
	out, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building upstream request for %s: %w", in.URL.Path, err)
	}
	out.Header = in.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	for _, h := range in.Header.Values("Connection") {
		for f := range strings.SplitSeq(h, ",") {
			out.Header.Del(strings.TrimSpace(f))
		}
	}
	// Events are parsed on the way through; a compressed stream could not be.
	out.Header.Del("Accept-Encoding")
	out.Host = in.Host
	if !h.trustedPeer(in.RemoteAddr) {
		out.Header.Set("X-Real-Ip", peerHost(in.RemoteAddr))
	}
	return out, nil
}

// roundTrip opens the upstream launch of r with buildToken (see request).
func (h *binderHub) roundTrip(ctx context.Context, r *http.Request, token string) (*http.Response, error) {
	req, err := h.request(ctx, r, token)
	if err != nil {
		return nil, err
	}
	return h.client.Do(req)
}

// roundTripTo opens the upstream launch of target for the client of r.
func (h *binderHub) roundTripTo(ctx context.Context, r *http.Request, target string) (*http.Response, error) {
	path, err := url.PathUnescape("/build/" + target)
	if err != nil {
		return nil, err
	}
	in := *r
	u := *r.URL
	u.Path, u.RawPath = path, "/build/"+target
	in.URL = &u
	req, err := h.request(ctx, &in, "")
	if err != nil {
		return nil, err
	}
	return h.client.Do(req)
}

// trustedPeer reports whether X-Real-Ip from this peer is believed: every
// peer when no TrustedPeers are configured (the gate listens only for
// Envoy), else only peers inside them.
func (h *binderHub) trustedPeer(remoteAddr string) bool {
	if len(h.trusted) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	for _, p := range h.trusted {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// origin is what BinderHub binds a build_token to: the Origin header, else
// the Host.
func origin(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			return u.Host
		}
		return o
	}
	return r.Host
}

// copyResponseHeaders copies upstream's end-to-end response headers.
// The gate's own CORS headers go first: an answer copied from BinderHub
// carries BinderHub's, or none when BinderHub sends none.
func copyResponseHeaders(dst, src http.Header) {
	dst.Del(headerAllowOrigin)
	dst.Del(headerAllowHeaders)
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
	dst.Del("Content-Length")
}
