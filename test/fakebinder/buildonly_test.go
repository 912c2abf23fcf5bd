package fakebinder

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// build_only=true on a BinderHub without enable_api_only_mode (the
// default) is refused with a 400 failed event once the image has been
// looked up, before any build or launch (builder.py
// BuildHandler._get_build_only raises HTTPError(400), which send_error
// writes as one failed event with status_code 400). With API-only mode on,
// the answer is "ready" without token or url, and the handler returns at
// once. The simulator ignores the parameter and launches a server with a
// token, so no test can exercise either answer through the gate.
func TestWireBuildOnlyWithoutAPIOnlyModeIsRefused(t *testing.T) {
	ts := startServer(t, fast())
	ctx := testCtx(t)
	r := ts.launch(ctx, "/build/gh/org/repo/HEAD?build_only=true", nil)
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("status %d, err %v", r.Status, r.Err)
	}
	want := "Building but not launching is not permitted when the API only mode was not enabled by setting `enable_api_only_mode` to True. \n"
	if len(r.Events) != 1 || r.last().Phase != sse.PhaseFailed || r.last().StatusCode != 400 || r.last().Message != want {
		t.Errorf("events %+v; want one failed event, status_code 400, %q", r.Events, want)
	}
	if st := ts.Stats(); st.BuildsStarted != 0 || st.TokensIssued != 0 {
		t.Errorf("stats %+v; want no build and no token for a refused build_only request", st)
	}
}

// readToEnd reads path's events until the server ends the stream, and
// how long that took after the last event.
func (ts *testServer) readToEnd(t *testing.T, path string) ([]sse.Payload, time.Duration) {
	t.Helper()
	_, events, afterLast := ts.readAll(t, path, http.Header{"Accept": {"text/event-stream"}})
	return events, afterLast
}

func phasesOf(evs []sse.Payload) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Phase)
	}
	return slices.Compact(out)
}

// With enable_api_only_mode, build_only=true builds the image (or finds
// it) and answers "ready" with the image name, no token and no url, then
// returns at once: no launch and no 60 s hold (builder.py
// BuildHandler.get, "if build_only: return").
func TestWireBuildOnlyInAPIOnlyMode(t *testing.T) {
	cfg := fast()
	cfg.APIOnlyMode = true
	cfg.ReadyHold = time.Minute // a hold would show
	cfg.FailSpecs = "/broken/"
	ts := startServer(t, cfg)

	evs, after := ts.readToEnd(t, "/build/gh/org/repo/HEAD?build_only=true")
	want := []string{sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseReady}
	if got := phasesOf(evs); !slices.Equal(got, want) {
		t.Fatalf("after a build: phases %v; want %v", got, want)
	}
	last := evs[len(evs)-1]
	if last.Message != "Done! Image built\n" || last.ImageName == "" || last.Token != "" || last.URL != "" {
		t.Errorf("after a build: ready %+v; want \"Done! Image built\", imageName, no token or url", last)
	}
	if after > 5*time.Second {
		t.Errorf("the stream stayed open %v after ready; want it ended at once", after)
	}

	evs, after = ts.readToEnd(t, "/build/gh/org/repo/HEAD?build_only=true")
	if len(evs) != 1 || evs[0].Phase != sse.PhaseReady || evs[0].Message != "Done! Found built image\n" ||
		evs[0].ImageName != last.ImageName || evs[0].Token != "" || evs[0].URL != "" {
		t.Errorf("for the built image: events %+v; want one ready \"Done! Found built image\" with imageName %s", evs, last.ImageName)
	}
	if after > 5*time.Second {
		t.Errorf("the stream stayed open %v after ready; want it ended at once", after)
	}

	// A failed build ends the request after its failure, without the sleep.
	evs, after = ts.readToEnd(t, "/build/gh/org/broken/HEAD?build_only=true")
	if got := phasesOf(evs); got[len(got)-1] != sse.PhaseFailed {
		t.Errorf("failed build: phases %v; want it to end failed", got)
	}
	if after > 5*time.Second {
		t.Errorf("the stream stayed open %v after the failure; want it ended at once", after)
	}

	if st := ts.Stats(); st.BuildsStarted != 2 || st.Launches != 0 || st.TokensIssued != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v; want two builds, no launch, no token, nothing refused", st)
	}
	// A launch without build_only still launches.
	r := ts.launch(testCtx(t), "/build/gh/org/repo/HEAD", nil)
	if r.last().Phase != sse.PhaseReady || r.last().Token == "" {
		t.Errorf("launch: phases %v; want ready with a token", r.phases())
	}
}

// The 400 comes after the image lookup, for a built image too, and a
// build_only that is not "true" is a plain launch.
func TestWireBuildOnlyRefusedForABuiltImageToo(t *testing.T) {
	cfg := fast()
	cfg.BuiltSpecs = "."
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	r := ts.launch(ctx, "/build/gh/org/repo/HEAD?build_only=TRUE", nil)
	if len(r.Events) != 1 || r.last().Phase != sse.PhaseFailed || r.last().StatusCode != 400 {
		t.Errorf("events %+v; want one failed event with status_code 400", r.Events)
	}
	r = ts.launch(ctx, "/build/gh/org/repo/HEAD?build_only=false", nil)
	if r.last().Phase != sse.PhaseReady || r.last().Token == "" {
		t.Errorf("build_only=false: phases %v; want a launch", r.phases())
	}
	if st := ts.Stats(); st.Rejected != 1 || st.TokensIssued != 1 {
		t.Errorf("stats %+v; want one refusal and one launch", st)
	}
}
