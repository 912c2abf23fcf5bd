package gate

import (
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/binderguard/binderguard/proxy/collapse"
)

func TestHotSpecMetricsStayBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	u, _ := url.Parse("http://binder")
	g, err := New(Config{Upstream: u, Policies: StaticPolicies(Launch{}, Global{}), Registerer: reg, MetricSpecs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st := State{Hot: []HotSpec{
		{Key: "a", Waiters: 9, Breaker: collapse.Closed},
		{Key: "b", Waiters: 5, Breaker: collapse.Closed},
		{Key: "c", Waiters: 1, Breaker: collapse.Closed},
		{Key: "d", Breaker: collapse.Open},
	}}
	g.pub.updateHotMetrics(st)
	if n := len(gather(t, reg, "binderguard_hot_spec_waiters")); n != 2 {
		t.Errorf("hot_spec_waiters has %d series, want the top 2", n)
	}
	if m := gather(t, reg, "binderguard_hot_spec_waiters"); len(m) != 2 || m[0].GetLabel()[0].GetValue() != "a" || m[0].GetGauge().GetValue() != 9 {
		t.Errorf("hot_spec_waiters = %v, want a=9 first", m)
	}
	if m := gather(t, reg, "binderguard_breakers_open"); len(m) != 1 || m[0].GetGauge().GetValue() != 1 {
		t.Errorf("breakers_open = %v", m)
	}
	g.pub.updateHotMetrics(State{})
	if n := len(gather(t, reg, "binderguard_hot_spec_waiters")); n != 0 {
		t.Errorf("hot_spec_waiters kept %d series of specs no longer hot", n)
	}
	if _, err := New(Config{Upstream: u, Policies: StaticPolicies(Launch{}, Global{}), Registerer: reg}); err == nil {
		t.Error("registering the metrics twice on one registry did not fail")
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}
