package main

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// promDS is the Prometheus picked in the datasource variable.
func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// ns is the selector every query carries: the namespace variable. Its
// "All" value is ".*", which also matches series without the label (a
// laptop's `binderguard local`).
const ns = `namespace=~"$namespace"`

// target is one query of a panel.
type target struct {
	expr, legend string
}

// sel puts the namespace selector into a metric's braces: sel("m", `a="b"`)
// is m{namespace=~"$namespace", a="b"}.
func sel(metric string, matchers ...string) string {
	return metric + "{" + strings.Join(append([]string{ns}, matchers...), ", ") + "}"
}

func query(t target, refID string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(promDS()).
		RefId(refID).
		Expr(t.expr).
		LegendFormat(t.legend)
}

// graph is a time series panel, 8 of the grid's 24 columns wide.
func graph(title, description, unit string, targets ...target) cog.Builder[dashboard.Panel] {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDS()).
		Unit(unit).
		Min(0).
		Height(8).
		Span(8).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom))
	for i, t := range targets {
		p = p.WithTarget(query(t, string(rune('A'+i))))
	}
	return p
}

// bars is a horizontal bar gauge of an instant query, for top-N lists.
func bars(title, description, unit string, t target) cog.Builder[dashboard.Panel] {
	return bargauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(promDS()).
		Unit(unit).
		Min(0).
		Height(8).
		Span(8).
		Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		WithTarget(query(t, "A").Instant())
}
