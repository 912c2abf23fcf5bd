package server

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	pushes, unchanged, invalid prometheus.Counter
	acks, nacks                *prometheus.CounterVec
	streams                    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_xds_pushes_total", Help: "Snapshots published to the xDS cache.",
		}),
		unchanged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_xds_unchanged_total", Help: "Updates that produced identical resources and pushed nothing.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "binderguard_xds_invalid_total", Help: "Updates refused before pushing: the snapshot was inconsistent or lacked a version.",
		}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_xds_acks_total", Help: "New versions ACKed by an Envoy, by resource type.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "binderguard_xds_nacks_total", Help: "Responses an Envoy rejected (NACK), by resource type.",
		}, []string{"type"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "binderguard_xds_streams", Help: "Open ADS streams.",
		}),
	}
	// Zero series for the types binderguard serves, so "no NACKs" reads as
	// 0 on dashboards and in rules rather than as no data.
	for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType, resource.ExtensionConfigType} {
		m.acks.WithLabelValues(shortType(typ))
		m.nacks.WithLabelValues(shortType(typ))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pushes, m.unchanged, m.invalid, m.acks, m.nacks, m.streams} {
			if err := reg.Register(c); err != nil {
				return m, fmt.Errorf("registering xds metrics: %w", err)
			}
		}
	}
	return m, nil
}
