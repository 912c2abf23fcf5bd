// Package fakebinder is a protocol-faithful BinderHub simulator: every
// data-path test and benchmark of binderguard (launch gate, Envoy edge,
// launch storms) runs against it instead of a real BinderHub.
//
// It answers GET /build/<provider>/<spec> with BinderHub's checks, phases,
// build dedup, ban and failure answers, and models the load that took
// mybinder.org down on 2018-07-30: every request attached to a running build
// is a build watcher that costs simulated CPU, and its pod watch and, once
// the pod runs, its log stream each take one worker of the build pool
// while they run (BinderHub's pool.submit(build.submit) and
// pool.submit(build.stream_logs)), so enough watchers of one building
// repository queue every other build and slow down, then time out,
// launches of every other repository. Dedup is BinderHub's, by build pod only: a request queued
// behind the pool submits its build when it gets its worker, attaching to
// the pod if it still exists and otherwise building again, and it does so
// even if its client has left (build.py KubernetesBuildExecutor.submit,
// builder.py BuildHandler.on_finish).
//
// The wire behaviour it copies is written down in
// /work/shared/reference/binderhub-facts.md; where that file is silent or
// loose, the simulator follows BinderHub's own code (binderhub/builder.py,
// base.py, launcher.py and repoproviders.py at b9fad995): the ban, unknown
// provider and malformed spec events carry no status_code, a present but
// invalid (or expired) build_token is refused with a 403 failed event
// while a request without one is allowed, the optional per-address rate
// limit (BinderHub's RateLimiter, off here by default) is skipped for a
// request with a valid build_token, the Accept header is split on ";"
// only, and build_only=true is refused with a 400 failed event unless
// Config.APIOnlyMode (enable_api_only_mode) is on. Keep it faithful: a test that passes here
// must mean the same against BinderHub.
//
// It must never be used as, or in front of, a production BinderHub: it
// builds and launches nothing, its tokens and server URLs are fake (under
// .invalid), and it keeps all state in memory.
package fakebinder
