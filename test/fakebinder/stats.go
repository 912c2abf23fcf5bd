package fakebinder

// Stats is the simulator's view of its own load, served as JSON on
// GET /_sim/stats. Counters count since New or the last POST /_sim/reset.
type Stats struct {
	// Requests is the number of GET /build requests received.
	Requests int64 `json:"requests"`
	// Rejected counts requests answered with one failed event before any
	// build or launch: bad Accept, unknown provider, malformed spec, ban,
	// invalid build token, rate limit, build_only without API-only mode.
	Rejected int64 `json:"rejected"`
	// RateLimited counts the rejections by the per-address rate limit
	// (--rate-limit).
	RateLimited int64 `json:"rate_limited"`
	// Faulted counts /build requests a test-injected Fault applied to
	// (see SetFault; never BinderHub behaviour).
	Faulted int64 `json:"faulted"`
	// Banned counts the rejections by --banned-specs.
	Banned int64 `json:"banned"`
	// ActiveStreams is the number of /build responses open now.
	ActiveStreams int64 `json:"active_streams"`

	// ActiveBuildWatchers is the number of requests attached to a running
	// build, whether they hold pool slots or wait for them;
	// PeakBuildWatchers is its maximum.
	ActiveBuildWatchers int64 `json:"active_build_watchers"`
	PeakBuildWatchers   int64 `json:"peak_build_watchers"`
	// Queued is the number of tasks waiting for a pool worker: build
	// submits (BinderHub's silent queue after "waiting"), including those
	// whose client has left, which still create their pod when they run,
	// and log streams queued when their pod went Running; PeakQueued its
	// maximum.
	Queued     int64 `json:"queued"`
	PeakQueued int64 `json:"peak_queued"`
	// PoolSlotsInUse is the number of workers busy now, out of Pool.
	PoolSlotsInUse int64 `json:"pool_slots_in_use"`
	Pool           int64 `json:"pool"`
	// PodWatches is the number of build submits running now, each on its
	// worker watching its build pod until the pod is deleted; LogStreams
	// the number of log streams running, each on its worker. Their peaks
	// show how many requests attach to a build at once.
	PodWatches     int64 `json:"pod_watches"`
	PeakPodWatches int64 `json:"peak_pod_watches"`
	LogStreams     int64 `json:"log_streams"`
	PeakLogStreams int64 `json:"peak_log_streams"`

	// BuildsStarted counts simulated build pods created: one per build of
	// an image, not per request, but a submit that ran after the pod of an
	// earlier build was deleted created another (BinderHub dedups by pod
	// name only). BuildsSucceeded and BuildsFailed count their ends.
	BuildsStarted    int64 `json:"builds_started"`
	BuildsSucceeded  int64 `json:"builds_succeeded"`
	BuildsFailed     int64 `json:"builds_failed"`
	BuildsInProgress int64 `json:"builds_in_progress"`

	// Launches counts requests that reached the launching phase;
	// LaunchesReady those that got a ready event, LaunchFailures those that
	// got a failed event after all launch attempts timed out.
	Launches           int64 `json:"launches"`
	LaunchesReady      int64 `json:"launches_ready"`
	LaunchFailures     int64 `json:"launch_failures"`
	LaunchRetries      int64 `json:"launch_retries"`
	LaunchesInProgress int64 `json:"launches_in_progress"`
	// SlowedLaunches counts launch attempts that ran at an average load
	// factor of 1.5 or more (CPU saturated by build watchers).
	SlowedLaunches int64 `json:"slowed_launches"`

	// LoadFactor is the current slow-down of launches (1 = idle);
	// PeakLoadFactor its maximum.
	LoadFactor     float64 `json:"load_factor"`
	PeakLoadFactor float64 `json:"peak_load_factor"`

	// TokensIssued counts the user-server tokens handed out in ready events.
	TokensIssued int64 `json:"tokens_issued"`
	// BuildTokensAccepted counts requests whose build_token verified;
	// BuildTokensRejected those answered 403 "Invalid build token".
	BuildTokensAccepted int64 `json:"build_tokens_accepted"`
	BuildTokensRejected int64 `json:"build_tokens_rejected"`

	// BuiltImages is the number of images the simulator considers built.
	BuiltImages int64 `json:"built_images"`
}
