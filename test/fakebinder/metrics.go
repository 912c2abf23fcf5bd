package fakebinder

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are BinderHub's own metrics, same names, labels and buckets
// (binderhub/builder.py), so dashboards and alerts can be tried against
// the simulator. Like BinderHub's, the build metrics count requests, not
// builds: every watcher of one build observes it.
type metrics struct {
	buildTime          *prometheus.HistogramVec
	buildCount         *prometheus.CounterVec
	launchTime         *prometheus.HistogramVec
	launchCount        *prometheus.CounterVec
	buildsInProgress   prometheus.Gauge
	launchesInProgress prometheus.Gauge
}

var (
	buildBuckets  = []float64{60, 120, 300, 600, 1800, 3600, 7200}
	launchBuckets = []float64{2, 5, 10, 20, 30, 60, 120, 300, 600}
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		buildTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binderhub_build_time_seconds", Help: "Histogram of build times", Buckets: buildBuckets,
		}, []string{"status"}),
		buildCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderhub_build_count", Help: "Counter of builds by repo",
		}, []string{"status", "provider", "repo"}),
		launchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binderhub_launch_time_seconds", Help: "Histogram of launch times", Buckets: launchBuckets,
		}, []string{"status", "retries"}),
		launchCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderhub_launch_count", Help: "Counter of launches by repo",
		}, []string{"status", "provider", "repo"}),
		buildsInProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderhub_inprogress_builds", Help: "Builds currently in progress",
		}),
		launchesInProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderhub_inprogress_launches", Help: "Launches currently in progress",
		}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.buildTime, m.buildCount, m.launchTime, m.launchCount, m.buildsInProgress, m.launchesInProgress} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
