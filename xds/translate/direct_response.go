package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/xds/ir"
)

// sseHeaders are the response headers of every launch answer Envoy gives
// itself, as BinderHub would send them: text/event-stream (which
// EventSource and fetch-event-source's default onopen insist on; the
// pinned official client's own onopen only checks the status), no
// caching.
func sseHeaders(class string, retry string) []*corev3.HeaderValueOption {
	h := []*corev3.HeaderValueOption{
		header("content-type", "text/event-stream; charset=UTF-8"),
		header("cache-control", "no-cache, no-store"),
		header(HeaderClass, class),
	}
	if retry != "" {
		h = append(h, header("retry-after", retry))
	}
	return h
}

// corsHeaders are the headers BinderHub with cors_allow_origin set puts on
// every /build answer (base.py BaseHandler.set_default_headers: the
// tornado "headers" setting app.py fills, then
// access-control-allow-headers: cache-control), for the answers the edge
// makes itself; none when origin is empty. BinderHub sends the second
// even without the first, but alone it means nothing to a browser.
func corsHeaders(origin string) []*corev3.HeaderValueOption {
	if origin == "" {
		return nil
	}
	return []*corev3.HeaderValueOption{
		header("access-control-allow-origin", origin),
		header("access-control-allow-headers", "cache-control"),
	}
}

// failedBody is one SSE failed event, the way BinderHub rejects a launch.
func failedBody(statusCode int, message string) string {
	return string(sse.Failed(statusCode, message).Frame())
}

// blockRoute answers a launch at the edge with one failed event.
//
// A ban's route is as light as a route can be, a status and a body: there
// may be 20,000 of them and Envoy rebuilds them all on every ban edit. Its
// 403 is rewritten once, for all bans, by the local reply config into
// BinderHub's 200 + text/event-stream (see localReply). Hot specs are few
// and carry their own Retry-After, so they are answered 200 with their
// headers directly.
func blockRoute(b ir.Block) *routev3.Route {
	r := &routev3.Route{Name: routeEdgePrefix + string(b.Class), Match: matchAll()}
	body := inline(failedBody(b.StatusCode, b.Message))
	if b.Class == ir.ClassBanned && b.RetryAfter == 0 {
		r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: banStatus, Body: body}}
		return r
	}
	retry := ""
	if b.RetryAfter > 0 {
		retry = retryAfter(b.RetryAfter)
	}
	r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200, Body: body}}
	r.ResponseHeadersToAdd = sseHeaders(string(b.Class), retry)
	return r
}

// banStatus is the status of a ban's direct response before the local
// reply config turns it into 200; nothing else on /build/ makes a local 403.
const banStatus = 403

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

// ClassInvalid is the class of a launch whose URL cannot be a launch.
const ClassInvalid = "invalid"

// invalidRoute answers a launch URL with malformed percent-encoding: a
// 400 failed event, as BinderHub answers a malformed spec, and no
// Retry-After (the same URL will never work).
func invalidRoute() *routev3.Route {
	return &routev3.Route{
		Name:  routeEdgePrefix + ClassInvalid,
		Match: matchAll(),
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 200,
			Body:   inline(failedBody(400, "This launch URL has malformed percent-encoding (a % must be followed by two hex digits). Please check the repository and ref in the URL.")),
		}},
		ResponseHeadersToAdd: sseHeaders(ClassInvalid, ""),
	}
}
