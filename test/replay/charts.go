package replay

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart is one PNG of the report.
type Chart struct {
	File    string // name in the output directory
	Title   string
	Caption string
}

// line is one named line of a panel.
type line struct {
	name   string
	x, y   []float64
	dashed bool
}

// panel is one plot of a chart.
type panel struct {
	title, ylabel string
	lines         []line
}

// drawChart renders panels side by side into path.
func drawChart(path string, panels []panel) error {
	var plots []*plot.Plot
	for _, pn := range panels {
		pl := plot.New()
		pl.Title.Text = pn.title
		pl.X.Label.Text = "seconds since the storm began"
		pl.Y.Label.Text = pn.ylabel
		pl.X.Min, pl.Y.Min = 0, 0
		pl.Legend.Top = true
		pl.BackgroundColor = color.White
		for i, ln := range pn.lines {
			pts := make(plotter.XYs, 0, len(ln.x))
			for j := range ln.x {
				if !math.IsNaN(ln.y[j]) && !math.IsInf(ln.y[j], 0) {
					pts = append(pts, plotter.XY{X: ln.x[j], Y: ln.y[j]})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("chart %s, %q: %w", filepath.Base(path), ln.name, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			if ln.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			pl.Add(l)
			pl.Legend.Add(ln.name, l)
		}
		plots = append(plots, pl)
	}
	const w, h = 420, 300
	img := vgimg.New(vg.Points(float64(len(plots))*w), vg.Points(h))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(10), PadY: vg.Points(8),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for j, pl := range plots {
		pl.Draw(canvases[0][j])
	}
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

// writeCharts draws the report's charts into dir from the legs' series
// (in runOrder) and returns them in the order the report shows them.
func writeCharts(dir string, ss [len(runOrder)]Series) ([]Chart, error) {
	dBase, dStorm, gBase, gStorm, stale := ss[0], ss[1], ss[2], ss[3], ss[4]
	const staleName = "stale while building"
	charts := []struct {
		Chart
		panels []panel
	}{
		{
			Chart{"replay-watchers.png", "Build watchers inside the simulator",
				"Requests attached to the hot repository's build, and those waiting silently for one of the 64 pool slots, during the storm. Through binderguard the simulator sees one watcher; the other launches are held at the gate, each on a live stream fed with the build's log. With stale while building (right) the simulator still sees one watcher of the new commit's build, and the launches are not held: each is launched with the last good commit at once."},
			[]panel{
				{Direct.String(), "requests", []line{
					{name: "build watchers", x: dStorm.T, y: dStorm.Watchers},
					{name: "queued silently", x: dStorm.T, y: dStorm.Queued},
				}},
				{Guarded.String(), "requests", []line{
					{name: "build watchers", x: gStorm.T, y: gStorm.Watchers},
					{name: "queued silently", x: gStorm.T, y: gStorm.Queued},
					{name: "held at the gate (with progress)", x: gStorm.T, y: gStorm.Held, dashed: true},
				}},
				{Guarded.String() + ", " + staleName, "requests", []line{
					{name: "build watchers", x: stale.T, y: stale.Watchers},
					{name: "queued silently", x: stale.T, y: stale.Queued},
					{name: "held at the gate (with progress)", x: stale.T, y: stale.Held, dashed: true},
				}},
			},
		},
		{
			Chart{"replay-cpu.png", "The simulator's own CPU",
				"CPU of the simulator process (the binder pod in 2018), read from /proc every second, in cores. Dashed: the no-storm baselines of the same run. Right: binderguard's and Envoy's processes together, where the held launches cost their CPU instead."},
			[]panel{
				{"simulator CPU", "cores", []line{
					{name: "storm, " + Direct.String(), x: dStorm.T, y: dStorm.SimCPU},
					{name: "storm, " + Guarded.String(), x: gStorm.T, y: gStorm.SimCPU},
					{name: "storm, " + staleName, x: stale.T, y: stale.SimCPU},
					{name: "no storm, " + Direct.String(), x: dBase.T, y: dBase.SimCPU, dashed: true},
					{name: "no storm, " + Guarded.String(), x: gBase.T, y: gBase.SimCPU, dashed: true},
				}},
				{"binderguard + Envoy CPU", "cores", []line{
					{name: "storm", x: gStorm.T, y: gStorm.GuardCPU},
					{name: "storm, " + staleName, x: stale.T, y: stale.GuardCPU},
					{name: "no storm", x: gBase.T, y: gBase.GuardCPU, dashed: true},
				}},
			},
		},
		{
			Chart{"replay-launches.png", "The storm's launches, as they end",
				"Launches of the hot repository that had ended ready, and failed or errored, by each second. With stale while building they are ready as they arrive, with the last good commit, instead of after the build."},
			[]panel{
				{"storm launches ended", "launches", []line{
					{name: "ready, " + Direct.String(), x: dStorm.T, y: dStorm.StormReady},
					{name: "ready, " + Guarded.String(), x: gStorm.T, y: gStorm.StormReady},
					{name: "ready, " + staleName, x: stale.T, y: stale.StormReady},
					{name: "failed, " + Direct.String(), x: dStorm.T, y: dStorm.StormFailed, dashed: true},
					{name: "failed, " + Guarded.String(), x: gStorm.T, y: gStorm.StormFailed, dashed: true},
					{name: "failed, " + staleName, x: stale.T, y: stale.StormFailed, dashed: true},
				}},
			},
		},
		{
			Chart{"replay-background.png", "Other repositories' launches",
				"p99 time to ready of the background launches (already-built repositories) that got ready in the last seconds (the p99 window in the scenario below), storm against no storm."},
			[]panel{
				{"background p99 time to ready", "seconds", []line{
					{name: "storm, " + Direct.String(), x: dStorm.T, y: dStorm.BackgroundP99},
					{name: "storm, " + Guarded.String(), x: gStorm.T, y: gStorm.BackgroundP99},
					{name: "storm, " + staleName, x: stale.T, y: stale.BackgroundP99},
					{name: "no storm, " + Direct.String(), x: dBase.T, y: dBase.BackgroundP99, dashed: true},
					{name: "no storm, " + Guarded.String(), x: gBase.T, y: gBase.BackgroundP99, dashed: true},
				}},
			},
		},
	}
	var out []Chart
	for _, c := range charts {
		if err := drawChart(filepath.Join(dir, c.File), c.panels); err != nil {
			return nil, err
		}
		out = append(out, c.Chart)
	}
	return out, nil
}
