package gate

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	launches        *prometheus.CounterVec
	waiters         prometheus.Gauge
	releases        prometheus.Counter
	promotions      prometheus.Counter
	rebuilds        prometheus.Counter
	shed            *prometheus.CounterVec
	transitions     *prometheus.CounterVec
	upstreamStreams prometheus.Gauge
	breakersOpen    prometheus.Gauge
	hotWaiters      *prometheus.GaugeVec
	expiredTokens   *prometheus.CounterVec
	stale           *prometheus.CounterVec
	staleFallbacks  *prometheus.CounterVec
	upstreamFaults  *prometheus.CounterVec
}

// newMetrics registers the gate's metrics on reg (a private registry when
// nil). Per-spec series exist only for the top hot specs (hot_spec_waiters)
// so label cardinality stays bounded.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		launches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_launches_total",
			Help: "Launch requests at the gate by what it did with them: lead, follow, pass, stale, reject, banned, invalid.",
		}, []string{"outcome"}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderguard_waiters",
			Help: "Launches held while their repository builds.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_releases_total",
			Help: "Held launches released to BinderHub after their image was built.",
		}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_promotions_total",
			Help: "Held launches promoted to leader after the leader left before the build ended.",
		}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_rebuilds_seen_total",
			Help: "Launches passed because their image was seen built whose stream showed a build instead (the ref moved); the spec's launches collapse again.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_shed_total",
			Help: "Launches answered with a failed event by the gate, by reason.",
		}, []string{"reason"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_breaker_transitions_total",
			Help: "Per-spec circuit breaker state changes.",
		}, []string{"from", "to"}),
		upstreamStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderguard_upstream_streams",
			Help: "Launch streams open to BinderHub that have not reached ready or failed.",
		}),
		breakersOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderguard_breakers_open",
			Help: "Per-spec circuit breakers that are open.",
		}),
		hotWaiters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "binderguard_hot_spec_waiters",
			Help: "Held launches of the specs with the most waiters (top few only).",
		}, []string{"spec"}),
		expiredTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_expired_build_tokens_total",
			Help: "Held launches whose build_token expired while they were held (or would have before reaching BinderHub), by what the gate sent instead: refreshed (the newest token BinderHub accepted for the same spec and origin) or dropped (no token: BinderHub counts the launch once against its user's address in its per-IP rate limit).",
		}, []string{"action"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_stale_launches_total",
			Help: "Launches served the last good commit of their ref while a newer commit was building (LaunchPolicy staleWhileBuilding), by launch policy.",
		}, []string{"policy"}),
		staleFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_stale_fallbacks_total",
			Help: "Launches admitted as stale that were held (or passed) after all, by reason: probe (the flight's first stale launch did not find the last good image, or did not answer in time), failed (this launch did not find it, or its launch failed before ready).",
		}, []string{"reason"}),
		upstreamFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_upstream_faults_total",
			Help: "Leaders' BinderHub streams that broke before the image was built, by fault: unreachable, slow_headers, stalled, not_sse, closed, bad_status.",
		}, []string{"fault"}),
	}
	for _, c := range []prometheus.Collector{m.launches, m.waiters, m.releases, m.promotions, m.rebuilds, m.shed, m.transitions, m.upstreamStreams, m.breakersOpen, m.hotWaiters, m.expiredTokens, m.stale, m.staleFallbacks, m.upstreamFaults} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// classify counts a launch's outcome and labels the answer with it.
func (m *metrics) classify(w http.ResponseWriter, outcome string) {
	m.launches.WithLabelValues(outcome).Inc()
	w.Header().Set(ClassHeader, outcome)
}
