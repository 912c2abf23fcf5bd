// Package e2e holds binderguard's end-to-end tests: a real Envoy binary
// programmed over ADS by the real xDS server, in front of the real launch
// gate and the BinderHub simulator, all on 127.0.0.1.
//
// The tests fail (never skip) when Envoy is missing: set ENVOY_BIN or run
// `make tools`. Benchmarks here measure what only a real Envoy can show:
// edge latency with 10 vs 10,000 bans, ban propagation, and the overhead of
// the Envoy hop on non-launch requests.
package e2e
