package translate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/xds/ir"
)

// sseHeaders are the response headers of every launch answer Envoy gives
// itself: the JS client only parses a text/event-stream body.
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

// failedBody is one SSE failed event, the way BinderHub rejects a launch.
func failedBody(statusCode int, message string) string {
	return string(sse.Failed(statusCode, message).Frame())
}

// blockRoute answers a launch at the edge with HTTP 200 and one failed event.
func blockRoute(b ir.Block) *routev3.Route {
	retry := ""
	if b.RetryAfter > 0 {
		retry = retryAfter(b.RetryAfter)
	}
	return &routev3.Route{
		Name:  routeEdgePrefix + string(b.Class),
		Match: matchAll(),
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 200,
			Body:   inline(failedBody(b.StatusCode, b.Message)),
		}},
		ResponseHeadersToAdd: sseHeaders(string(b.Class), retry),
	}
}

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}
