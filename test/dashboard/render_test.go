package dashboard

import (
	"flag"
	"fmt"
	"image/color"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// render writes the panels' data from the storm as one PNG for the README
// (Grafana itself is not installable here): `make dashboard-png`.
var render = flag.String("render", "", "render every panel with data to this PNG file")

// series is one line of a panel over the storm.
type series struct {
	name   string
	points plotter.XYs
}

// queryRange is /api/v1/query_range over [from, to] at the scrape step.
func (p *prom) queryRange(expr string, from, to time.Time) ([]struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}, error) {
	v := url.Values{"query": {expr}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)},
		"step": {strconv.FormatFloat(scrapeInterval.Seconds(), 'f', -1, 64)}}
	var d struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query_range", v, expr, &d); err != nil {
		return nil, err
	}
	return d.Result, nil
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// panelSeries queries every target of a panel, named by its legend format.
func panelSeries(p *prom, qs []panelQuery, from, to time.Time) ([]series, error) {
	var out []series
	for _, q := range qs {
		res, err := p.queryRange(substitute(q.expr), from, to)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			s := series{name: legendLabel.ReplaceAllStringFunc(q.legend, func(m string) string {
				return r.Metric[legendLabel.FindStringSubmatch(m)[1]]
			})}
			for _, v := range r.Values {
				ts, _ := v[0].(float64)
				str, _ := v[1].(string)
				y, err := strconv.ParseFloat(str, 64)
				if err != nil || y != y { // NaN: no point, as in Grafana
					continue
				}
				s.points = append(s.points, plotter.XY{X: ts - float64(from.Unix()), Y: y})
			}
			if len(s.points) > 0 {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// renderPanels draws one chart per panel with data, three to a row.
func renderPanels(p *prom, queries []panelQuery, from, to time.Time, path string) error {
	var titles []string
	byPanel := map[string][]panelQuery{}
	for _, q := range queries {
		if _, ok := byPanel[q.panel]; !ok {
			titles = append(titles, q.panel)
		}
		byPanel[q.panel] = append(byPanel[q.panel], q)
	}
	var plots []*plot.Plot
	for _, title := range titles {
		ss, err := panelSeries(p, byPanel[title], from, to)
		if err != nil {
			return fmt.Errorf("panel %q: %w", title, err)
		}
		if len(ss) == 0 {
			continue
		}
		pl := plot.New()
		pl.Title.Text = title
		pl.X.Label.Text = "seconds into the storm"
		pl.Legend.Top = true
		pl.BackgroundColor = color.White
		for i, s := range ss {
			l, err := plotter.NewLine(s.points)
			if err != nil {
				return fmt.Errorf("panel %q: %w", title, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			pl.Add(l)
			pl.Legend.Add(s.name, l)
		}
		plots = append(plots, pl)
	}
	const cols = 3
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(plots) {
				grid[i][j] = plots[k]
			}
		}
	}
	img := vgimg.New(vg.Points(float64(cols)*330), vg.Points(float64(rows)*230))
	dc := draw.New(img)
	canvases := plot.Align(grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(8), PadY: vg.Points(8),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}, dc)
	for i := range grid {
		for j, pl := range grid[i] {
			if pl != nil {
				pl.Draw(canvases[i][j])
			}
		}
	}
	return savePNG(img, path)
}

func savePNG(img *vgimg.Canvas, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
