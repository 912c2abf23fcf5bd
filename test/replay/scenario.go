package replay

import (
	"fmt"
	"regexp"
	"time"
)

// Scenario is what one replay storms and measures.
type Scenario struct {
	// Name labels the report ("full", "scaled").
	Name string
	// HotSpec is the popular repository that starts its build when the
	// storm begins, as jupyterlab-demo did on 2018-07-30.
	HotSpec string
	// Launches is the number of launches of HotSpec, started evenly over
	// Ramp from the beginning of the window.
	Launches int
	Ramp     time.Duration
	// BuildTime and LaunchTime are the simulator's --build-time and
	// --launch-time.
	BuildTime  time.Duration
	LaunchTime time.Duration
	// BurnCPU is the simulator's --burn-cpu: the real CPU each build
	// watcher holding pool slots burns per second (its pod watch and log
	// stream threads in BinderHub).
	BurnCPU time.Duration
	// Background are already-built repositories launched every
	// BackgroundInterval each, from the start of the window to its end.
	Background         []string
	BackgroundInterval time.Duration
	// Window is how long every leg is measured: the background mix runs
	// through it and CPU means are taken over it, so that the storm legs
	// and their baselines compare like for like. It must cover the build
	// and the release of the held launches.
	Window time.Duration
	// P99Window is the sliding window of the per-second background p99.
	P99Window time.Duration
	// Timeout bounds each launch (launchstorm's per-client timeout).
	Timeout time.Duration
}

// builtSpecs is the simulator's --built-specs: the background
// repositories' images exist; the hot one's does not.
const builtSpecs = `^gh/binder-examples/`

var backgroundSpecs = []string{"gh/binder-examples/requirements/HEAD", "gh/binder-examples/conda/HEAD"}

// Full is the incident at its size: 1,000 launches of a repository whose
// build takes 60 s, over a 40 s ramp. The window covers the build and the
// release of 1,000 held launches at the default LaunchPolicy's 20/s.
func Full() Scenario {
	return Scenario{
		Name:       "full",
		HotSpec:    "gh/jupyterlab/jupyterlab-demo/HEAD",
		Launches:   1000,
		Ramp:       40 * time.Second,
		BuildTime:  60 * time.Second,
		LaunchTime: 2 * time.Second,
		// 64 busy workers of the pool burn 15 ms each: one core full,
		// the binder pod saturated at 100 % in 2018.
		BurnCPU:            30 * time.Millisecond,
		Background:         backgroundSpecs,
		BackgroundInterval: time.Second,
		Window:             130 * time.Second,
		P99Window:          10 * time.Second,
		Timeout:            10 * time.Minute,
	}
}

// Scaled is the same story small enough for `make test` on a loaded
// 2-core machine: 100 launches, a 5 s build.
func Scaled() Scenario {
	return Scenario{
		Name:               "scaled",
		HotSpec:            "gh/jupyterlab/jupyterlab-demo/HEAD",
		Launches:           100,
		Ramp:               2 * time.Second,
		BuildTime:          5 * time.Second,
		LaunchTime:         500 * time.Millisecond,
		BurnCPU:            10 * time.Millisecond,
		Background:         backgroundSpecs,
		BackgroundInterval: time.Second,
		Window:             15 * time.Second,
		P99Window:          5 * time.Second,
		Timeout:            3 * time.Minute,
	}
}

var builtRE = regexp.MustCompile(builtSpecs)

// Validate reports what makes s unusable.
func (s Scenario) Validate() error {
	switch {
	case s.HotSpec == "" || builtRE.MatchString(s.HotSpec):
		return fmt.Errorf("scenario %q: hot spec %q must be set and not already built", s.Name, s.HotSpec)
	case s.Launches < 1:
		return fmt.Errorf("scenario %q: launches %d, want at least 1", s.Name, s.Launches)
	case s.Ramp < 0 || s.BuildTime <= 0 || s.LaunchTime <= 0 || s.BurnCPU < 0:
		return fmt.Errorf("scenario %q: ramp, build time, launch time and burn must be positive", s.Name)
	case s.Window < s.BuildTime:
		return fmt.Errorf("scenario %q: window %v is shorter than the build %v", s.Name, s.Window, s.BuildTime)
	case s.BackgroundInterval <= 0 || s.P99Window <= 0 || s.Timeout <= 0:
		return fmt.Errorf("scenario %q: background interval, p99 window and timeout must be positive", s.Name)
	}
	for _, b := range s.Background {
		if !builtRE.MatchString(b) {
			return fmt.Errorf("scenario %q: background spec %q is not one the simulator has built (%s)", s.Name, b, builtSpecs)
		}
	}
	return nil
}

// backgroundPerSpec is how many launches each background spec makes over
// the window.
func (s Scenario) backgroundPerSpec() int {
	return max(1, int(s.Window/s.BackgroundInterval))
}
