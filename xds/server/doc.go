// Package server is binderguard's xDS server: a go-control-plane snapshot
// cache behind an ADS gRPC server speaking both state-of-the-world and
// delta xDS.
//
// Set takes a complete set of Envoy resources, validates every one, and
// publishes it with per-type content-hash versions, so a change that
// produces identical resources pushes nothing, and a change to routes
// (bans, hot specs) pushes only RDS. Every Envoy shares one snapshot (the
// node hash is constant): the edge is the same everywhere.
//
// Callbacks count ACKs and NACKs (a request carrying ErrorDetail) and log
// the reason; Envoy keeps serving the last config it accepted.
//
// It must never translate policy (it sees only Envoy protos) and never
// push a resource that failed its own validation.
package server
