// Package gate is binderguard's launch gate: the HTTP handler Envoy sends
// GET /build/<provider>/<spec> to. Per build key it keeps one leader
// stream open to BinderHub while the repository builds, holds the other
// launches of it on live SSE streams fed with the leader's build log,
// releases them at the policy's pace as their own upstream requests once
// the image is built, and sheds with one SSE failed event what it cannot
// hold: banned specs (403), open circuit breakers (503), caps (429).
//
// The decisions live in proxy/collapse; this package does the streaming,
// bookkeeping, breakers (github.com/sony/gobreaker/v2, one per key, evicted
// when idle), metrics and state publishing.
//
// It must never forward an event with a token or url, or a
// built/launching/ready event, to any client but the one whose own
// upstream request produced it, and it must never answer /build with an
// HTTP error status: every rejection is a 200 SSE stream with one failed
// event, because the official client retries on 429 and 5xx.
//
// Trust model: the gate listens only for Envoy, which overwrites X-Real-Ip
// with the downstream address. The gate forwards X-Real-Ip unchanged so
// BinderHub sees the user's address; from a peer outside
// Config.TrustedPeers it replaces X-Real-Ip with the peer address, so a
// client that reaches the gate directly cannot choose the address
// BinderHub rate-limits.
package gate
