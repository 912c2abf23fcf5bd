package translate

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/binderguard/binderguard/xds/ir"
)

// Health-check defaults: a dead gate is noticed within about two intervals
// and the aggregate falls back to binder; one success brings it back.
const (
	defaultHealthInterval = time.Second
	DefaultHealthPath     = "/healthz"
)

func gateHealthCheck(g ir.Gate) *corev3.HealthCheck {
	interval, path := g.HealthInterval, g.HealthPath
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	if path == "" {
		path = DefaultHealthPath
	}
	return &corev3.HealthCheck{
		Timeout:            durationpb.New(interval),
		Interval:           durationpb.New(interval),
		NoTrafficInterval:  durationpb.New(interval),
		UnhealthyThreshold: wrapperspb.UInt32(2),
		HealthyThreshold:   wrapperspb.UInt32(1),
		HealthChecker: &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path: path,
		}},
	}
}
