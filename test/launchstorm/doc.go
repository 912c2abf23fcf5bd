// Package launchstorm replays the 2018-07-30 BinderHub incident on demand:
// it opens many concurrent launches of one repository the way the official
// JS client (@jupyterhub/binderhub-client) does, optionally with launches of
// other repositories in the background, and summarises what every client
// saw (outcome, phases, time to first byte, time to ready).
//
// Run is the library entry point used by cmd/launchstorm, tests and
// benchmarks. The package is a load client only: it must never be pointed
// at anything but a test or loopback deployment by our own tests, and it
// must never retry in ways the real client does not, so that what it
// measures is what browsers would do: by default it does not retry at all,
// like the pinned 0.5.0 client; with Config.Retry it retries 429/5xx every
// second, as the client's source intends.
package launchstorm
