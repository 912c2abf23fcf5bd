// Package translate turns the control plane's IR (package ir) into Envoy
// resources: one listener, one route configuration, three clusters.
//
// It is pure: no I/O, no clocks, no caches. It must never import the policy
// or gate packages (it sees only ir), and never produce a cluster per spec
// or a route per ban in a list Envoy walks in order.
//
// # Edge rules: matcher tree, not a route list
//
// Envoy tries a virtual host's routes in order, so a route per ban would
// make every request pay for every ban. The virtual host therefore uses
// Envoy's generic matcher (VirtualHost.matcher) instead of a route list: a
// prefix_match_map on the :path header, which Envoy builds into a trie and
// resolves to the longest matching prefix. Its keys are
//
//	"/build/"                  → the launch route (aggregate cluster "launch")
//	"/build/gh/org/repo/" ...  → one direct_response route per ban or hot spec
//	(no match)                 → the pass-through route to "binder"
//
// A lookup costs O(length of the path), whatever the number of bans, and
// every ban is answered at the edge (not only a hot subset), so a ban edit
// takes effect at Envoy with one RDS push. The edge only matches the
// canonical spellings the policy snapshot lists; other spellings of a banned
// repository (case, .git suffix, percent-encoding) reach the gate, whose
// identity index is authoritative.
//
// Why not only a hot set at the edge: with the trie the request cost is
// already flat (test/e2e BenchmarkEdgeLatencyBans: p50 10k/10 bans ≈ 1.0),
// and a ban then stops a storm before the gate sees it, even a storm on a
// repository the gate has not seen yet. The price is on edits: the route
// configuration is one RDS resource, so Envoy rebuilds every ban route on
// each change (BenchmarkBanPropagation: a few ms with 10 bans, under a
// second with 10,000 on a loaded 2-core machine). To keep that rebuild
// cheap a ban route is only a status and a body; one local_reply mapper
// turns every ban's 403 into a 200 text/event-stream answer shaped like
// BinderHub's (whose ban event has no status_code; ours carries 403). The
// gate enforces a new ban from the policy store at once, so nothing leaks
// to BinderHub while Envoy catches up. If bans grow far beyond 10,000,
// shard them (scoped RDS keyed on the provider/owner path segments) rather
// than give up the trie.
//
// # Launch route
//
// /build/ goes to the aggregate cluster "launch" = [gate, binder]: the gate
// (h2c, ring hash on the path without its query, so one replica owns a
// spec) while it passes its active health check, BinderHub directly when no
// gate host is healthy (fail open). Retries are off except on
// connect-failure / refused-stream / reset-before-request, which cannot
// start a second launch because no byte reached an upstream; with the
// previous_priorities retry plugin that single retry goes to the fallback,
// so a killed gate costs no launch even before its health check notices.
//
// # Rejections
//
// Every answer Envoy gives on /build/ itself is HTTP 200 with one SSE
// failed event: bans and hot specs as direct responses (bans via the 403
// mapper above), a launch path with malformed percent-encoding as a 400
// (checked by one RE2 match under the /build/ entry, before the gate's
// HTTP server would reset the stream), Envoy's own 429/5xx (rate limit, overflow, no healthy
// upstream) rewritten by local_reply_config, with Retry-After.
// Only a failed event on a 200 stream gets the message and status_code to
// the official JS client's user and closes it cleanly; on a bare 429/503
// the pinned 0.5.0 shows a garbled connection error instead, and its source
// is written to retry those every second, which a fixed client would do
// against a struggling BinderHub (see test/compat).
//
// # Stats
//
// Each answer carries an x-binderguard-class header (banned, breaker_open,
// saturated, shed from Envoy, or whatever the gate sets: lead, follow
// (collapsed), pass, stale…); a stats access logger counts binderguard.launches by class,
// route, upstream host (a binder host on the launch route = a fallback
// launch) and response flags, so dashboards tell the classes apart without
// a stat per ban. Prometheus: envoy_binderguard_launches{class,route,
// upstream_host,flags}.
//
// # h2c to the gate
//
// A held launch is an SSE stream that may last the whole build. Over
// HTTP/1.1 each would pin an Envoy→gate connection (and a goroutine pair
// and buffers in the gate); over h2c it is one stream on a few shared
// connections, so the gate cluster's max_requests, not max_connections,
// is the cap that matters.
package translate
