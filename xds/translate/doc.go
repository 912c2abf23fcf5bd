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
// takes effect at Envoy with one RDS push. The benchmark in test/e2e
// measures edge latency with 10 and 10,000 bans. The edge only matches the
// canonical spellings the policy snapshot lists; other spellings of a banned
// repository (case, .git suffix, percent-encoding) reach the gate, whose
// identity index is authoritative.
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
// failed event: bans and hot specs as direct responses, Envoy's own 429/5xx
// (rate limit, overflow, no healthy upstream) rewritten by local_reply_config.
// The official JS client retries every second on a bare 429/503 and stops on
// a failed event.
//
// # Stats
//
// Each answer carries an x-binderguard-class header (banned, breaker_open,
// saturated, shed from Envoy, or whatever the gate sets: collapsed,
// passed…); a stats access logger counts binderguard.launches by class,
// route and response flags, so dashboards tell the classes apart without a
// stat per ban.
package translate
