// Package gate is binderguard's launch gate: the HTTP handler Envoy sends
// GET /build/<provider>/<spec> to. Per build key it keeps one leader
// stream open to BinderHub while the repository builds, holds the other
// launches of it on live SSE streams fed with the leader's build log,
// releases them at the policy's pace as their own upstream requests once
// the image is built (or, where the policy says so, launches them at once
// with the last good commit: stale.go), and sheds with one SSE failed event what it cannot
// hold: banned specs (403), open circuit breakers (503), caps (429).
//
// The decisions live in proxy/collapse; this package does the streaming,
// bookkeeping, breakers (github.com/sony/gobreaker/v2, one per key, evicted
// when idle), metrics and state publishing.
//
// It must never forward an event with a token or url, or a
// built/launching/ready event, to any client but the one whose own
// upstream request produced it, and it must never answer /build with an
// HTTP error status of its own (only BinderHub's own non-stream answers
// other than 429 and 5xx pass through unchanged): every rejection is a 200
// SSE stream with one failed event, plus a Retry-After header where a
// retry is the advice (shed launches, open breakers, a restarting gate,
// BinderHub's own 429/5xx). Only such a stream carries the
// message and status_code to the user and closes the official client
// (@jupyterhub/binderhub-client) cleanly: on a bare 429 or 5xx the pinned
// 0.5.0 shows a garbled "Error connecting to event stream, retrying"
// error and loses both, and its source is written to retry those every
// second, so a client whose retry works would hammer a struggling
// BinderHub (see test/compat).
//
// # Behaviour decisions
//
//   - A request that arrives before the leader's first event is held as a
//     follower: holding for a moment is cheap, letting it through could be
//     a second build watcher. If the leader's first phase is built (the
//     image exists), the followers are released at once and launches of
//     the key pass straight through for Config.BuiltTTL. A pass whose
//     first event shows a build instead (the ref moved: a push to HEAD)
//     ends that window, so the launches after it collapse again.
//   - Followers get the gate's own waiting event, then the leader's
//     build-log events (fetching, building, unknown with only phase and
//     message), replayed from a bounded ring and then live. The leader's
//     upstream waiting, built, launching and ready events are its own.
//   - A released or promoted follower's own upstream stream drops
//     BinderHub's "Waiting for build to start..." (the client already has
//     the gate's waiting event and the log); everything else passes. A
//     promoted follower's upstream replays the build log's tail: lines
//     still in the ring are dropped until the first new one.
//   - A failed event before the leader's stream showed waiting or a log
//     line, or one with a status_code, is BinderHub refusing the leader's
//     own request (ban, rate limit, bad token, bad spec): the leader gets
//     it and the oldest follower leads next with its own request. Only a
//     failed event after the build started is a build failure, shared with
//     the followers (message only) and counted by the breaker.
//   - build_token: a held launch whose own token expires within
//     Config.TokenMargin presents, on release or promotion, the newest
//     token seen for the same provider spec and origin that does not, and
//     goes without a token when there is none: BinderHub refuses an
//     expired token with 403 but lets a launch without one through its
//     per-IP rate limit. The gate reads exp from the JWT without verifying
//     it; that is safe because BinderHub verifies what it receives, and a
//     build token names the spec and origin, not a user. A request without
//     a token never gets one, and a launch that is not held (a first
//     leader, a pass) goes on with exactly what its client sent.
//   - A leader whose client leaves before built is replaced by the oldest
//     follower; its own request re-attaches to the running build
//     (BinderHub answers the second pod create with 409 and attaches).
//   - A build past the policy's MaxBuild cancels the leader's upstream
//     request, gives everyone held a 503 failed event and counts a breaker
//     failure. A launch abandoned by everyone counts neither way.
//   - Released followers wait for room under MaxConcurrent and
//     MaxConcurrentTotal instead of being shed: they have waited already.
//   - An upstream answer that is not an event stream: 429 and 5xx become a
//     200 stream with one failed event (and Retry-After), so the user sees
//     the reason and a client that retries 429/5xx every second, as the
//     official client's source intends, does not hammer a struggling
//     BinderHub; other statuses pass unchanged. For a leader it ends the flight and
//     counts a breaker failure, as an unreachable BinderHub does.
//   - Stale while building (a policy's Launch.Stale): the gate remembers,
//     per build key, the commit the key's ref last resolved to in a ready
//     event (binder_persistent_request, else built's image tag). While
//     the leader's stream shows a build, a launch of the key is sent to
//     BinderHub as its own launch of that commit, without its
//     build_token (which names the ref), and gets one notice event first.
//     The first such launch of a flight probes alone; the rest wait for
//     it. If BinderHub's first event for it is not built (the image is
//     gone, or it is the commit building), the gate forgets the commit
//     and that flight's launches are held as usual; a stale launch that
//     fails before ready is held too, on the stream it has.
//   - A held launch gets its progress (place in line, the key's recent
//     build times from a bounded history, how long this build has gone)
//     on arrival and every Config.ProgressInterval after, in place of a
//     keepalive.
//   - An upstream stream that breaks before built (no headers within
//     Config.UpstreamHeaderTimeout, silence past Config.UpstreamIdleTimeout,
//     bytes that are not launch events, a close) is one breaker failure:
//     the leader's client is told what happened and, while the breaker
//     allows, the oldest follower re-attaches; once it opens every
//     follower is told what happened and when to retry. Data events that
//     are not JSON objects are dropped, never forwarded.
//   - A spec that Policies cannot parse is answered with a 400 failed
//     event: a spec the gate cannot read is a spec it cannot check
//     against the bans.
//
// # Trust model
//
// The gate listens only for Envoy, which overwrites X-Real-Ip with the
// downstream address. The gate forwards X-Real-Ip and X-Forwarded-For
// unchanged so BinderHub sees the user's address; from a peer outside
// Config.TrustedPeers (when set) it replaces X-Real-Ip with the peer
// address, so a client that reaches the gate directly cannot choose the
// address BinderHub rate-limits and bans.
package gate
