// Package translate turns the control plane's IR (package ir) into Envoy
// resources: one listener, one route configuration, three clusters, and
// BanSlots ban slots served by ECDS (ban_shards.go).
//
// It is pure: no I/O, no clocks. Translate keeps nothing between calls;
// Incremental keeps what it built for each block, so that an edit costs
// what it touches, and gives the same output as Translate. It must never
// import the policy or gate packages (it sees only ir), and never produce
// a cluster per spec or a route per ban in a list Envoy walks in order.
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
//	"/build/gh/o" ...          → the launch route with a ban slot enabled, per ban shard
//	"/build/gh/org/repo/HEAD"  → one direct_response route per hot spec
//	(no match)                 → the pass-through route to "binder"
//
// Only a GET goes down the trie: in front of it, one exact match on
// :method sends every other method to the pass-through route, since only
// BinderHub's BuildHandler.get is a launch (a CORS preflight or a HEAD of
// a launch URL must take no launch token and get no ban's answer).
//
// A hot spec's full path is longer than the ban of its repository, owner
// or pattern, so it would beat the ban; a hot spec a ban covers (the ban's
// prefix is a prefix of its path) is left out of the map, and the ban
// answers its launches whether the spec is hot or not. Covered is decided
// by looking up the path's own prefixes among the bans, so it costs the
// same with 10 or 10,000 bans (BenchmarkHotSpecEdit).
//
// A lookup costs O(length of the path), whatever the number of bans, and
// every ban is answered at the edge (not only a hot subset). The edge only matches the
// canonical spellings the policy snapshot lists; other spellings of a banned
// repository (case, .git suffix, percent-encoding) reach the gate, whose
// identity index is authoritative.
//
// Why not only a hot set at the edge: with the trie the request cost is
// already flat (test/e2e BenchmarkEdgeLatencyBans: p50 10k/10 bans ≈ 1.0),
// and a ban then stops a storm before the gate sees it, even a storm on a
// repository the gate has not seen yet.
//
// # Bans: ECDS slots, so an edit costs what it touches
//
// Plain bans (class banned, no Retry-After) are not map entries of the
// route configuration: one RDS resource made every edit re-send, and Envoy
// rebuild, every ban (300 ms with 10,000 bans against 3 ms with 10). They
// live in canonical shards of at most 128 prefixes, hashed into BanSlots
// HTTP filters served one by one by ECDS and disabled by default; the
// route configuration holds, for each shard's prefix, a copy of the launch
// route that enables that shard's slot. A ban edit re-sends one slot over
// delta xDS, and a launch pays two tries (routes, then its slot) whatever
// the number of bans. A slot marks a banned launch with set_metadata
// carrying the ban's whole failed event; one RBAC filter denies it and the
// first local reply mapper answers it as BinderHub answers a ban (200,
// text/event-stream, x-binderguard-class: banned, route "launch" in the
// stats). The gate enforces a new ban from the policy store at once, so
// nothing leaks to BinderHub while Envoy catches up. ban_shards.go says
// which other mechanisms were tried and why they did not hold.
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
// failed event: bans from their slot (above), hot specs as direct
// responses (a ban with a Retry-After via the 403 mapper), a launch path with malformed percent-encoding as a 400
// (checked by one RE2 match under the /build/ entry, before the gate's
// HTTP server would reset the stream), Envoy's own 429/5xx (rate limit, overflow, no healthy
// upstream) rewritten by local_reply_config, with Retry-After.
// With Edge.CORSAllowOrigin (BinderHub's cors_allow_origin) every one of
// these answers also carries Access-Control-Allow-Origin and
// Access-Control-Allow-Headers: cache-control, as BinderHub's own do: each
// mapper adds them, and a last mapper adds them to the 200 direct
// responses the others leave alone.
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
