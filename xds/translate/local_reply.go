package translate

import (
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/ir"
)

// ClassShed is the class of Envoy's own rejections on /build/.
const ClassShed = "shed"

// Messages of Envoy's own rejections, as the user reads them.
const (
	msgRateLimited = "Too many launches from your address. Please wait a little and try again."
	msgOverloaded  = "This Binder is at capacity right now. Please try again in a little while."
)

// defaultRetryAfter is used when the IR gives none: long enough that a
// retry storm does not re-form at once.
const defaultRetryAfter = 10 * time.Second

// localReply rewrites Envoy's own 429 and 5xx answers on /build/ into the
// shape of BinderHub's rejections (200, one SSE failed event) plus a
// Retry-After header for non-browser clients. Elsewhere (and
// for upstream answers, which are not local replies) nothing changes.
//
// Every mapper adds the site's CORS headers (corsHeaders), and a last one
// adds them alone to the edge's other launch answers (hot specs, a
// malformed launch URL: 200 direct responses no mapper above rewrites), so
// that every answer the edge makes on a launch carries them.
func localReply(l ir.Launch, corsOrigin string) *hcmv3.LocalReplyConfig {
	retry := retryAfter(defaultRetryAfter)
	if l.RetryAfter > 0 {
		retry = retryAfter(l.RetryAfter)
	}
	cors := corsHeaders(corsOrigin)
	mappers := []*hcmv3.ResponseMapper{
		banShardMapper(cors),
		banMapper(cors),
		launchMapper(statusFilter(accesslogv3.ComparisonFilter_EQ, 429), 429, msgRateLimited, retry, cors),
		launchMapper(statusFilter(accesslogv3.ComparisonFilter_GE, 500), 503, msgOverloaded, retry, cors),
	}
	if len(cors) > 0 {
		mappers = append(mappers, &hcmv3.ResponseMapper{Filter: launchPathFilter(), HeadersToAdd: cors})
	}
	return &hcmv3.LocalReplyConfig{Mappers: mappers}
}

// banMapper turns a ban route's 403 into a BinderHub-style 200 SSE answer,
// keeping the route's body (the ban's own failed event, which carries
// status_code 403 where BinderHub's ban event has none).
func banMapper(cors []*corev3.HeaderValueOption) *hcmv3.ResponseMapper {
	m := launchMapper(statusFilter(accesslogv3.ComparisonFilter_EQ, banStatus), 0, "", "", cors)
	m.Body = nil
	m.HeadersToAdd = append(sseHeaders(string(ir.ClassBanned), "")[1:], cors...)
	return m
}

func launchMapper(status *accesslogv3.AccessLogFilter, code int, msg, retry string, cors []*corev3.HeaderValueOption) *hcmv3.ResponseMapper {
	return &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
			AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{launchPathFilter(), status}},
		}},
		StatusCode: wrapperspb.UInt32(200),
		Body:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: failedBody(code, msg)}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: "%LOCAL_REPLY_BODY%"},
			}},
			ContentType: "text/event-stream; charset=UTF-8",
		},
		HeadersToAdd: append(sseHeaders(ClassShed, retry)[1:], cors...), // content type comes from the format
	}
}

// launchPathFilter matches launches: GET requests whose :path starts
// with /build/. Other methods on /build/ are not launches (BinderHub
// serves only GET there); they pass through to BinderHub, and its answers,
// or Envoy's, reach them unchanged and uncounted.
func launchPathFilter() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
		AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{
			headerFilter(":method", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: launchMethod}}),
			headerFilter(":path", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: ir.LaunchPrefix}}),
		}},
	}}
}

func headerFilter(name string, m *matcherv3.StringMatcher) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
		HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
			Name:                 name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
		}},
	}}
}

func statusFilter(op accesslogv3.ComparisonFilter_Op, code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
			Op:    op,
			Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "binderguard.local_reply_status"},
		}},
	}}
}
