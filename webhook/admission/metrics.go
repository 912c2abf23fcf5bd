package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/webhook/evaluate"
)

type metrics struct {
	reviews  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	findings *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_webhook_reviews_total",
			Help: "Admission reviews answered, by webhook path, pod kind and result (allowed, patched, denied, warned, error).",
		}, []string{"webhook", "pod", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "binderguard_webhook_review_duration_seconds",
			Help: "Time spent deciding one admission review, by webhook path (decode to response, excluding TLS and HTTP).",
			// Decisions take tens of microseconds; the top buckets catch
			// trouble well before the 5 s webhook timeout.
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3, 0.25, 1},
		}, []string{"webhook"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_webhook_policy_findings_total",
			Help: "Policy rules that matched an admitted pod, by mode (Enforce denied it, Warn warned, Audit only recorded it), policy and rule.",
		}, []string{"mode", "policy", "rule"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reviews, m.latency, m.findings} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(path string, kind evaluate.Kind, r cradmission.Response, d time.Duration) {
	if kind == "" {
		kind = "unknown"
	}
	m.reviews.WithLabelValues(path, string(kind), result(r)).Inc()
	m.latency.WithLabelValues(path).Observe(d.Seconds())
}

func result(r cradmission.Response) string {
	switch {
	case r.Allowed && len(r.Patches) > 0:
		return "patched"
	case r.Allowed && len(r.Warnings) > 0:
		return "warned"
	case r.Allowed:
		return "allowed"
	case r.Result != nil && r.Result.Code != 0 && r.Result.Code != 403:
		return "error"
	}
	return "denied"
}
