package fakebinder

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are BinderHub's own metrics as its /metrics serves them, copied
// from binderhub/builder.py (BUILD_TIME, LAUNCH_TIME, BUILD_COUNT,
// LAUNCH_COUNT, BUILDS_INPROGRESS, LAUNCHES_INPROGRESS) and
// binderhub/repoproviders.py (GITHUB_RATE_LIMIT), so dashboards and alerts
// can be tried against the simulator. BinderHub registers them with
// Python's prometheus_client, which exposes them under other names than
// the ones in the source: a Counter("binderhub_launch_count") is served as
// binderhub_launch_count_total plus a binderhub_launch_count_created gauge
// per label set; a Histogram as _bucket/_sum/_count plus _created. The
// names below are the served ones. Like BinderHub's, the build metrics
// count requests, not builds: every watcher of one build observes it.
//
// Not copied: prometheus_client's default process_* and python_* metrics,
// which describe the Python process, not BinderHub.
type metrics struct {
	buildTime          *prometheus.HistogramVec
	buildCount         *prometheus.CounterVec
	launchTime         *prometheus.HistogramVec
	launchCount        *prometheus.CounterVec
	buildsInProgress   prometheus.Gauge
	launchesInProgress prometheus.Gauge
	githubRateLimit    prometheus.Gauge
	created            *created
}

// BUILD_BUCKETS and LAUNCH_BUCKETS in binderhub/builder.py; their last
// bucket, float("inf"), is the +Inf bucket every histogram has.
var (
	buildBuckets  = []float64{60, 120, 300, 600, 1800, 3600, 7200}
	launchBuckets = []float64{2, 5, 10, 20, 30, 60, 120, 300, 600}
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		// BUILD_TIME, binderhub/builder.py
		buildTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binderhub_build_time_seconds", Help: "Histogram of build times", Buckets: buildBuckets,
		}, []string{"status"}),
		// BUILD_COUNT, binderhub/builder.py: Counter("binderhub_build_count")
		buildCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderhub_build_count_total", Help: "Counter of builds by repo",
		}, []string{"status", "provider", "repo"}),
		// LAUNCH_TIME, binderhub/builder.py
		launchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binderhub_launch_time_seconds", Help: "Histogram of launch times", Buckets: launchBuckets,
		}, []string{"status", "retries"}),
		// LAUNCH_COUNT, binderhub/builder.py: Counter("binderhub_launch_count")
		launchCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderhub_launch_count_total", Help: "Counter of launches by repo",
		}, []string{"status", "provider", "repo"}),
		// BUILDS_INPROGRESS, binderhub/builder.py
		buildsInProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderhub_inprogress_builds", Help: "Builds currently in progress",
		}),
		// LAUNCHES_INPROGRESS, binderhub/builder.py
		launchesInProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderhub_inprogress_launches", Help: "Launches currently in progress",
		}),
		// GITHUB_RATE_LIMIT, binderhub/repoproviders.py: set from GitHub's
		// X-RateLimit-Remaining; the simulator asks no GitHub, so it stays 0
		// as in a BinderHub that has not resolved a GitHub ref yet.
		githubRateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderhub_github_rate_limit_remaining", Help: "GitHub rate limit remaining",
		}),
		created: newCreated(
			createdOf{"binderhub_build_time_seconds", "Histogram of build times", []string{"status"}},
			createdOf{"binderhub_build_count", "Counter of builds by repo", []string{"status", "provider", "repo"}},
			createdOf{"binderhub_launch_time_seconds", "Histogram of launch times", []string{"status", "retries"}},
			createdOf{"binderhub_launch_count", "Counter of launches by repo", []string{"status", "provider", "repo"}},
		),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.buildTime, m.buildCount, m.launchTime, m.launchCount,
		m.buildsInProgress, m.launchesInProgress, m.githubRateLimit, m.created} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

func (m *metrics) observeBuild(status, provider, repo string, d time.Duration) {
	m.created.touch("binderhub_build_time_seconds", status)
	m.buildTime.WithLabelValues(status).Observe(d.Seconds())
	m.created.touch("binderhub_build_count", status, provider, repo)
	m.buildCount.WithLabelValues(status, provider, repo).Inc()
}

func (m *metrics) observeLaunchTime(status, retries string, d time.Duration) {
	m.created.touch("binderhub_launch_time_seconds", status, retries)
	m.launchTime.WithLabelValues(status, retries).Observe(d.Seconds())
}

func (m *metrics) countLaunch(status, provider, repo string) {
	m.created.touch("binderhub_launch_count", status, provider, repo)
	m.launchCount.WithLabelValues(status, provider, repo).Inc()
}

// created serves the <name>_created gauges prometheus_client adds for each
// label set of a Counter or Histogram: the Unix time the label set was
// first used.
type created struct {
	mu    sync.Mutex
	descs map[string]*prometheus.Desc
	at    map[string]map[string]float64 // name → joined label values → time
}

// createdOf names a prometheus_client Counter or Histogram as the source
// spells it (without _total), with its help and labels.
type createdOf struct {
	name, help string
	labels     []string
}

func newCreated(of ...createdOf) *created {
	c := &created{descs: map[string]*prometheus.Desc{}, at: map[string]map[string]float64{}}
	for _, o := range of {
		name := o.name + "_created"
		c.descs[name] = prometheus.NewDesc(name, o.help, o.labels, nil)
		c.at[name] = map[string]float64{}
	}
	return c
}

// sep joins label values; it cannot occur in a UTF-8 label value.
const sep = "\xff"

// touch records the first use of a label set of the metric named as in
// the source.
func (c *created) touch(metric string, values ...string) {
	name := metric + "_created"
	key := strings.Join(values, sep)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.at[name][key]; !ok {
		c.at[name][key] = float64(time.Now().UnixNano()) / 1e9
	}
}

func (c *created) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *created) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, byKey := range c.at {
		for key, t := range byKey {
			ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, t, strings.Split(key, sep)...)
		}
	}
}
