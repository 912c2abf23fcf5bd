// Package server is binderguard's xDS server: a go-control-plane snapshot
// cache behind an ADS gRPC server speaking both state-of-the-world and
// delta xDS.
//
// Set takes a complete set of Envoy resources with the content versions
// the translator gave them (per type, and per resource for delta xDS) and
// publishes it, so a change that produces identical resources pushes
// nothing, and a ban edit pushes only the slots it changed. Resources are
// validated once, by the translator that built them (translate.Translate
// and Incremental), not again here. Every Envoy shares one snapshot (the
// node hash is constant): the edge is the same everywhere.
//
// Callbacks count ACKs and NACKs (a request carrying ErrorDetail) and log
// the reason; Envoy keeps serving the last config it accepted.
//
// It must never translate policy (it sees only Envoy protos) and never
// push a snapshot the cache finds inconsistent or a resource without a
// version.
package server
