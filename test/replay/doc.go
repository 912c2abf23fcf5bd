// Package replay replays the 2018-07-30 mybinder.org incident end to end
// and writes the report (test/bench/REPLAY.md with its PNG charts): a
// popular repository starts a long build, many launches of it arrive over
// a ramp while other repositories launch in the background, once straight
// at the BinderHub simulator (bin/fakebinder, as mybinder.org had it) and
// once through Envoy + binderguard (`binderguard local`), each next to a
// no-storm baseline measured in the same run; and once more through
// binderguard with the policy's staleWhileBuilding on, the repository's
// HEAD having moved from a commit the gate saw ready to the one building.
//
// It runs the simulator and binderguard as separate processes so that the
// simulator's own CPU can be read from /proc, the way the binder pod's CPU
// was watched in 2018, and it drives the launches with test/launchstorm:
// it never writes a storm client of its own. Every second it samples the
// simulator's CPU, its build watchers and silently queued requests, and
// the launches held by the gate; ready and failed counts and the
// background p99 come from each launch's own timeline.
//
// It is a load tool for loopback deployments it starts itself: it must
// never be pointed at a real BinderHub, and the figures it writes are
// measurements, never asserted as timing ratios by tests (the scaled run
// in this package's test checks invariants only).
package replay
