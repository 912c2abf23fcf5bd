package fakebinder

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Defaults mirror BinderHub's own settings where it has one, so a
// simulator started without flags behaves like a stock deployment.
const (
	DefaultBuildTime         = 20 * time.Second
	DefaultLaunchTime        = 2 * time.Second
	DefaultLaunchTimeout     = 600 * time.Second // Launcher.launch_timeout
	DefaultLaunchRetries     = 4                 // Launcher.retries
	DefaultLaunchRetryDelay  = 4 * time.Second   // Launcher.retry_delay, doubled per retry
	DefaultPool              = 64                // build_pool: 2 × concurrent_build_limit 32
	DefaultReadyHold         = 60 * time.Second  // BuildHandler sleeps 60 s after ready
	DefaultKeepaliveInterval = 25 * time.Second  // BuildHandler.KEEPALIVE_INTERVAL
	DefaultWatchTimeout      = 30 * time.Second  // KubernetesBuildExecutor.submit: watch timeout_seconds=30
	DefaultHubURL            = "http://hub.fakebinder.invalid/"
	DefaultRateLimitPeriod   = time.Hour // RateLimiter.period_seconds
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// BuildTime is how long one simulated repo2docker build runs once it has
	// pool slots.
	BuildTime time.Duration
	// LaunchTime is how long a launch takes on an idle simulated binder pod.
	LaunchTime time.Duration
	// LaunchTimeout fails a launch attempt that has not finished in this
	// long (BinderHub's Launcher.launch_timeout).
	LaunchTimeout time.Duration
	// LaunchRetries is the number of launch attempts (Launcher.retries);
	// LaunchRetryDelay the wait before the second one, doubled each time.
	LaunchRetries    int
	LaunchRetryDelay time.Duration

	// FailSpecs, BuiltSpecs and BannedSpecs are regular expressions.
	// FailSpecs and BuiltSpecs are searched for (unanchored, case-sensitive)
	// in "<provider>/<spec>"; BannedSpecs is matched like BinderHub's
	// banned_specs: re.match, case-insensitive, against the spec without
	// the provider.
	FailSpecs   string
	BuiltSpecs  string
	BannedSpecs string

	// Pool is the number of worker threads of BinderHub's build_pool
	// (2 × concurrent_build_limit). Each request's build submit (the pod
	// watch) and, once the pod runs, its log stream take one each while
	// they run, first come first served.
	Pool int
	// CPUCapacity is how many build watchers the simulated binder pod can
	// serve before its CPU saturates; beyond it launches slow down in
	// proportion. Defaults to Pool/2, the requests whose pod watch and log
	// stream the pool can run at once.
	CPUCapacity int
	// BurnCPU is real CPU burnt per second by each request's pod watch and
	// log stream together while they run on pool workers (half each), so
	// a full pool burns Pool/2 × BurnCPU and profiles of a storm show the
	// cost; 0 burns none.
	BurnCPU time.Duration

	// WatchTimeout is the pod watch's timeout_seconds: a submit whose
	// request has finished frees its worker only when its current watch
	// runs out (or the pod is deleted).
	WatchTimeout time.Duration

	// ReadyHold is how long a stream stays open after ready (or after a
	// failed build) so the client closes first.
	ReadyHold time.Duration
	// KeepaliveInterval is the period of ":keepalive" comments.
	KeepaliveInterval time.Duration

	// BuildTokenSecret, when set, makes the server verify build_token
	// query parameters (HS256, aud "<provider>/<spec>", origin claim).
	BuildTokenSecret string
	// RateLimit is BinderHub's RateLimiter.limit: /build requests allowed
	// per client address (X-Real-Ip, else the rightmost X-Forwarded-For)
	// per RateLimitPeriod, skipped for a request with a valid build_token
	// (only checked with BuildTokenSecret set). 0 turns it off: the
	// default here, unlike BinderHub's 10, so that storms the tests send
	// from one address are not refused.
	RateLimit int
	// RateLimitPeriod is RateLimiter.period_seconds; default 1 h.
	RateLimitPeriod time.Duration
	// HubURL is the prefix of the fake user-server URLs in ready events.
	HubURL string
	// APIOnlyMode is BinderHub's enable_api_only_mode (off by default):
	// with it, build_only=true builds (or finds) the image and answers
	// "ready" without launching; without it such a request is refused with
	// a 400 failed event (builder.py BuildHandler._get_build_only).
	APIOnlyMode bool

	// ExtraProviders are provider prefixes registered beside the built-in
	// ones, as a site adds entries to BinderHub.repo_providers (app.py).
	// Each stands for a RepoProvider subclass shaped like BinderHub's
	// FakeProvider (repoproviders.py) that takes the spec whole: the
	// resolved ref is a hash of the spec, so one spec is one image.
	ExtraProviders []string

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// compiled is Config after defaults and regex compilation.
type compiled struct {
	Config
	fail, built, banned *regexp.Regexp
}

// ErrConfig marks an invalid Config.
var ErrConfig = errors.New("invalid fakebinder config")

// withDefaults is c with every zero field set to its default.
func (c Config) withDefaults() Config {
	d := c
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&d.BuildTime, DefaultBuildTime)
	setDur(&d.WatchTimeout, DefaultWatchTimeout)
	setDur(&d.LaunchTime, DefaultLaunchTime)
	setDur(&d.LaunchTimeout, DefaultLaunchTimeout)
	setDur(&d.LaunchRetryDelay, DefaultLaunchRetryDelay)
	setDur(&d.ReadyHold, DefaultReadyHold)
	setDur(&d.KeepaliveInterval, DefaultKeepaliveInterval)
	setDur(&d.RateLimitPeriod, DefaultRateLimitPeriod)
	if d.LaunchRetries == 0 {
		d.LaunchRetries = DefaultLaunchRetries
	}
	if d.Pool == 0 {
		d.Pool = DefaultPool
	}
	if d.CPUCapacity == 0 {
		d.CPUCapacity = max(1, d.Pool/2)
	}
	if d.HubURL == "" {
		d.HubURL = DefaultHubURL
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d
}

func (c Config) compile() (compiled, error) {
	out := compiled{Config: c.withDefaults()}
	d := &out.Config
	var errs []error
	for name, v := range map[string]time.Duration{
		"build time": d.BuildTime, "launch time": d.LaunchTime, "launch timeout": d.LaunchTimeout,
		"launch retry delay": d.LaunchRetryDelay, "ready hold": d.ReadyHold,
		"keepalive interval": d.KeepaliveInterval, "watch timeout": d.WatchTimeout, "burn cpu": d.BurnCPU, "rate limit period": d.RateLimitPeriod,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s %v is negative", ErrConfig, name, v))
		}
	}
	if d.Pool < 2 {
		errs = append(errs, fmt.Errorf("%w: pool %d is below 2 (build_pool is 2 × concurrent_build_limit)", ErrConfig, d.Pool))
	}
	if d.CPUCapacity < 0 {
		errs = append(errs, fmt.Errorf("%w: cpu capacity %d is negative", ErrConfig, d.CPUCapacity))
	}
	if d.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("%w: rate limit %d is negative", ErrConfig, d.RateLimit))
	}
	if d.LaunchRetries < 0 {
		errs = append(errs, fmt.Errorf("%w: launch retries %d is negative", ErrConfig, d.LaunchRetries))
	}
	if d.BurnCPU > time.Second/10 {
		errs = append(errs, fmt.Errorf("%w: burn cpu %v is over 100ms per second per watcher", ErrConfig, d.BurnCPU))
	}
	compile := func(name, expr string, banned bool) *regexp.Regexp {
		if expr == "" {
			return nil
		}
		if banned {
			// BinderHub: re.match(banned, spec, re.IGNORECASE), anchored
			// at the start only.
			expr = `^(?i:` + expr + `)`
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrConfig, name, err))
		}
		return re
	}
	out.fail = compile("fail specs", c.FailSpecs, false)
	out.built = compile("built specs", c.BuiltSpecs, false)
	out.banned = compile("banned specs", c.BannedSpecs, true)
	return out, errors.Join(errs...)
}
