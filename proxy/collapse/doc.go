// Package collapse holds the pure decisions of the launch gate: who of the
// launches of one spec leads, follows, passes straight through, goes to
// the last good commit while a newer one builds (stale) or is shed;
// what a leader's upstream event means for the spec's followers; how fast
// held followers are released; and which build_token, if any, a held
// launch presents when it is released or promoted.
//
// It does no I/O, starts no goroutines and reads no clock: callers pass the
// time in, so every decision is table-tested. It must never let an event
// that carries a token or url, or a built/launching/ready event, be
// classified as one that may be shared with other clients.
package collapse
