package fakebinder

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// This file holds the pure parts of the simulator: the build submit's
// decisions, the build_only check, the scripts of events a build and a launch send, and the
// load model. server I/O lives in build.go and launch.go.

// The build model copies BinderHub's, which has no per-image build state:
// a request looks the image up in the registry (found: launch), and
// otherwise queues its build's submit in the build pool
// (builder.py BuildHandler.get: pool.submit(build.submit)). Dedup happens
// only when that submit runs, by pod name (build.py
// KubernetesBuildExecutor.submit: create_namespaced_pod, or on a 409 watch
// the pod that exists), so a submit that runs after the pod is gone builds
// again, even when the image was pushed meanwhile.

// submitOutcome is what a build submit does once it has its worker.
type submitOutcome int

const (
	// submitCreate: no pod of the build's name: create it, a new build.
	submitCreate submitOutcome = iota
	// submitAttach: create_namespaced_pod answered 409: watch that pod.
	submitAttach
)

func (o submitOutcome) String() string {
	return [...]string{"create pod", "attach (409)"}[o]
}

// onSubmit is KubernetesBuildExecutor.submit's choice: it always tries to
// create the pod, and only the pod's existence makes it a watcher of
// someone else's build. Neither the registry nor the requests queued
// before it matter.
func onSubmit(podExists bool) submitOutcome {
	if podExists {
		return submitAttach
	}
	return submitCreate
}

// keepsWorker reports whether a submit that has created or found its pod
// goes on to watch it, holding its worker until the pod is deleted. A
// request that ended before its submit ran has set stop_event
// (BuildHandler.on_finish → BuildExecutor.stop, "not related to stopping
// the build"): submit has created the pod all the same, skips its
// "while not self.stop_event.is_set()" watch loop and returns at once.
func keepsWorker(stopped bool) bool { return !stopped }

// errBuildOnlyNotPermitted is BuildHandler._get_build_only's
// HTTPError(400) log_message, which send_error writes as the event's
// message (with "\n" appended).
var errBuildOnlyNotPermitted = errors.New("Building but not launching is not permitted when" +
	" the API only mode was not enabled by setting `enable_api_only_mode` to True. ")

// buildOnly is BuildHandler._get_build_only: vals are the build_only query
// values, of which tornado's get_query_argument takes the last, with
// control characters replaced by spaces and stripped; only "true" in any
// case asks for build_only, which is refused unless apiOnlyMode
// (enable_api_only_mode, default False) is on.
func buildOnly(vals []string, apiOnlyMode bool) (bool, error) {
	if len(vals) == 0 {
		return false, nil
	}
	v := strings.Map(func(r rune) rune {
		// tornado's _remove_control_chars_regex: [\x00-\x08\x0e-\x1f]
		if r <= 0x08 || r >= 0x0e && r <= 0x1f {
			return ' '
		}
		return r
	}, vals[len(vals)-1])
	if strings.ToLower(strings.TrimSpace(v)) != "true" {
		return false, nil
	}
	if !apiOnlyMode {
		return false, errBuildOnlyNotPermitted
	}
	return true, nil
}

// step is one event of a script, At after the script starts.
type step struct {
	At    time.Duration
	Event sse.Payload
}

// buildLogLines are repo2docker-like log lines of the building phase.
var buildLogLines = []string{
	"Using PythonBuildPack builder\n",
	"Building conda environment for python=3.12\n",
	"Step 1/52 : FROM docker.io/library/buildpack-deps:jammy\n",
	"Step 12/52 : RUN apt-get -qq update && apt-get -qq install --yes --no-install-recommends less unzip\n",
	"Step 24/52 : RUN TIMEFORMAT='time: %3R' bash -c 'time ${MAMBA_EXE} install -p ${NB_PYTHON_PREFIX} -r requirements.txt'\n",
	"Step 36/52 : RUN ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r requirements.txt\n",
	"Step 48/52 : RUN jupyter lab build --minimize=False\n",
	"Step 52/52 : CMD [\"jupyter\", \"notebook\", \"--ip\", \"0.0.0.0\"]\n",
	"Successfully built 5e1b2c3d4f60\n",
	"Pushing image\n",
}

// buildFailure is the repo2docker error a --fail-specs build ends with.
const buildFailure = "The command '/bin/sh -c ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r requirements.txt' returned a non-zero code: 1 (simulated by fakebinder --fail-specs)\n"

// buildScript is the sequence of events one build sends its watchers,
// spread over buildTime: its first event is the container starting
// (Running), then fetching lines, building log lines
// through the build, and for a failing build repo2docker's failed log line
// followed by the pod's failed status. A successful build's last step is
// not an event: the caller sends "built" when the script is over.
func buildScript(buildTime time.Duration, t target, fail bool) []step {
	fetch := []string{
		"Picked Git content provider.\n",
		fmt.Sprintf("Cloning into '/tmp/repo2docker%s'...\n", t.Ref[:8]),
		fmt.Sprintf("HEAD is now at %s\n", t.Ref[:7]),
	}
	lines := buildLogLines
	if fail {
		lines = buildLogLines[:6]
	}
	n := len(fetch) + len(lines)
	out := make([]step, 0, n+2)
	at := func(i int) time.Duration {
		// The pod is Pending for the first 5% of the build (scheduling,
		// pulling the builder image), so the requests that attach in a
		// storm's first seconds all see it go Running together; then the
		// log is spread evenly up to 95%, so the last line comes a little
		// before "built".
		return time.Duration(int64(buildTime) * (5*int64(n) + 90*int64(i)) / int64(100*n))
	}
	for i, m := range fetch {
		out = append(out, step{At: at(i), Event: sse.Payload{Phase: sse.PhaseFetching, Message: m}})
	}
	for i, m := range lines {
		out = append(out, step{At: at(len(fetch) + i), Event: sse.Payload{Phase: sse.PhaseBuilding, Message: m}})
	}
	if fail {
		out = append(out,
			step{At: buildTime, Event: sse.Payload{Phase: sse.PhaseFailed, Message: buildFailure}},
			step{At: buildTime, Event: sse.Payload{Phase: sse.PhaseFailed}},
		)
	}
	return out
}

// imageEvent is the event a request gets once its image exists: found in
// the registry, or built while it watched. It is "built" before a launch,
// or with build_only (API-only mode) "ready" without token or url, which
// ends the request (builder.py BuildHandler.get: "Done! Found built image"
// and "Done! Image built").
func imageEvent(imageName string, found, buildOnly bool) sse.Payload {
	phase, msg := sse.PhaseBuilt, "Built image, launching...\n"
	switch {
	case buildOnly && found:
		phase, msg = sse.PhaseReady, "Done! Found built image\n"
	case buildOnly:
		phase, msg = sse.PhaseReady, "Done! Image built\n"
	case found:
		msg = "Found built image, launching...\n"
	}
	return sse.Payload{Phase: phase, Message: msg, ImageName: imageName}
}

// launchMessages are JupyterHub/KubeSpawner progress messages a launch
// forwards as "launching" events, at the given fraction of the launch.
func launchMessages(username string) []struct {
	At  float64
	Msg string
} {
	return []struct {
		At  float64
		Msg string
	}{
		{0, "Server requested\n"},
		{0.25, fmt.Sprintf("2026-01-01T00:00:00Z [Normal] Successfully assigned binder/jupyter-%s to fakebinder-node\n", username)},
		{0.5, "2026-01-01T00:00:01Z [Normal] Container image already present on machine\n"},
		{0.75, "2026-01-01T00:00:02Z [Normal] Started container notebook\n"},
		{1, fmt.Sprintf("Server ready at /user/%s/\n", username)},
	}
}

// loadFactor is the load model: the simulated binder pod serves capacity
// build watchers at full speed; past that its CPU is saturated and every
// launch's work runs watchers/capacity times slower.
func loadFactor(watchers, capacity int) float64 {
	if capacity <= 0 || watchers <= capacity {
		return 1
	}
	return float64(watchers) / float64(capacity)
}

// launchClock tracks one launch attempt's progress under a changing load.
type launchClock struct {
	need    time.Duration // work the launch needs on an idle pod
	done    time.Duration // work done so far
	elapsed time.Duration // wall time so far
}

// advance records dt of wall time at load factor f and reports whether
// the launch has finished.
func (c *launchClock) advance(dt time.Duration, f float64) bool {
	if f < 1 {
		f = 1
	}
	c.elapsed += dt
	c.done += time.Duration(float64(dt) / f)
	return c.done >= c.need
}

// fraction is the share of the launch's work that is done, in [0, 1].
func (c *launchClock) fraction() float64 {
	if c.need <= 0 {
		return 1
	}
	return min(1, float64(c.done)/float64(c.need))
}

// slowed reports whether the attempt ran at an average load factor of 1.5
// or more, the simulator's definition of a launch slowed by the load.
func (c *launchClock) slowed() bool {
	return c.done > 0 && float64(c.elapsed) >= 1.5*float64(c.done)
}
