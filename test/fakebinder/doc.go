// Package fakebinder is a protocol-faithful BinderHub simulator: every
// data-path test and benchmark of binderguard (launch gate, Envoy edge,
// launch storms) runs against it instead of a real BinderHub.
//
// It answers GET /build/<provider>/<spec> with BinderHub's checks, phases,
// build dedup, ban and failure answers, and models the load that took
// mybinder.org down on 2018-07-30: every request attached to a running build
// is a build watcher that holds worker slots and simulated CPU, so enough
// watchers of one building repository slow down and time out launches of
// every other repository. The wire behaviour it copies is written down, with
// sources, in /work/shared/reference/binderhub-facts.md; keep it faithful to
// that file.
//
// It must never be used as, or in front of, a production BinderHub: it
// builds and launches nothing, its tokens and URLs are fake, and it keeps
// all state in memory.
package fakebinder
