package fakebinder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collapse drops repeats of a phase, so a sequence reads as its phases.
func collapse(phases []string) []string { return slices.Compact(slices.Clone(phases)) }

func TestWireLaunchPhasesAndReadyFields(t *testing.T) {
	ts := startServer(t, fast())
	ctx := testCtx(t)
	hdr := http.Header{"X-Real-Ip": {"198.51.100.7"}, "X-Forwarded-For": {"203.0.113.1"}}

	first := ts.launch(ctx, "/build/gh/Org/Repo/HEAD", hdr)
	if first.Err != nil || first.Status != http.StatusOK {
		t.Fatalf("first launch: status %d, err %v", first.Status, first.Err)
	}
	want := []string{sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}
	if got := collapse(first.phases()); !slices.Equal(got, want) {
		t.Fatalf("phases = %v; want %v", got, want)
	}
	var built sse.Payload
	for _, e := range first.Events {
		if e.Phase == sse.PhaseBuilt {
			built = e
		}
	}
	if built.Message != "Built image, launching...\n" || built.ImageName == "" {
		t.Errorf("built event = %+v", built)
	}
	ready := first.last()
	checks := map[string][2]string{
		"image":                     {ready.Image, built.ImageName},
		"repo_url":                  {ready.RepoURL, "https://github.com/Org/Repo"},
		"binder_request":            {ready.BinderRequest, "v2/gh/Org/Repo/HEAD"},
		"binder_launch_host":        {ready.BinderLaunchHost, ts.URL + "/"},
		"binder_client_ip":          {ready.BinderClientIP, "198.51.100.7"},
		"message":                   {ready.Message, "server running at " + ready.URL + "\n"},
		"binder_persistent_request": {ready.BinderPersistentRequest[:len("v2/gh/Org/Repo/")], "v2/gh/Org/Repo/"},
	}
	for field, c := range checks {
		if c[0] != c[1] {
			t.Errorf("ready %s = %q; want %q", field, c[0], c[1])
		}
	}
	if ready.Token == "" || !strings.HasPrefix(ready.URL, DefaultHubURL+"user/") || ready.BinderRefURL == "" {
		t.Errorf("ready event lacks token, url or ref url: %+v", ready)
	}

	second := ts.launch(ctx, "/build/gh/Org/Repo/HEAD", nil)
	want = []string{sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}
	if got := collapse(second.phases()); !slices.Equal(got, want) {
		t.Fatalf("second launch phases = %v; want %v", got, want)
	}
	if second.Events[0].Message != "Found built image, launching...\n" {
		t.Errorf("second launch built message = %q", second.Events[0].Message)
	}
	if second.last().Token == ready.Token || second.last().URL == ready.URL {
		t.Errorf("two launches share a token or URL: %q %q", ready.Token, ready.URL)
	}
	if second.last().BinderClientIP != "127.0.0.1" {
		t.Errorf("binder_client_ip without headers = %q; want the peer address", second.last().BinderClientIP)
	}
	st := ts.Stats()
	if st.BuildsStarted != 1 || st.Launches != 2 || st.LaunchesReady != 2 || st.TokensIssued != 2 || st.Requests != 2 {
		t.Errorf("stats %+v; want 1 build, 2 launches, 2 tokens, 2 requests", st)
	}
}

func TestWireConcurrentRequestsShareOneBuild(t *testing.T) {
	const n = 20
	cfg := fast()
	cfg.BuildTime = 2 * time.Second // room for all n to attach
	ts := startServer(t, cfg)
	ctx := testCtx(t)

	results := make([]launchResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = ts.launch(ctx, "/build/gh/jupyterlab/jupyterlab-demo/HEAD", nil) })
	}
	mid := ts.waitFor(t, "all requests attached", func(s Stats) bool { return s.ActiveBuildWatchers == n })
	if mid.BuildsStarted != 1 || mid.Queued != 0 {
		t.Errorf("mid-build stats %+v; want one build, none queued", mid)
	}
	wg.Wait()

	tokens := map[string]bool{}
	for i, r := range results {
		if r.Err != nil || r.last().Phase != sse.PhaseReady {
			t.Fatalf("client %d: err %v, phases %v", i, r.Err, r.phases())
		}
		tokens[r.last().Token] = true
	}
	if len(tokens) != n {
		t.Errorf("%d distinct tokens for %d launches", len(tokens), n)
	}
	st := ts.Stats()
	if st.BuildsStarted != 1 || st.PeakBuildWatchers != n || st.ActiveBuildWatchers != 0 || st.BuildsSucceeded != 1 {
		t.Errorf("stats %+v; want builds_started 1, peak_build_watchers %d", st, n)
	}
}

func TestWireExtraProvidersLaunchTheirSpecWhole(t *testing.T) {
	cfg := fast()
	cfg.ExtraProviders = []string{"custom"}
	cfg.BannedSpecs = "evil/.*"
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	r := ts.launch(ctx, "/build/custom/Org/Repo/v1", nil)
	if r.Err != nil || r.last().Phase != sse.PhaseReady {
		t.Fatalf("launch of an extra provider: err %v, phases %v", r.Err, r.phases())
	}
	if got := r.last().BinderRequest; got != "v2/custom/Org/Repo/v1" {
		t.Errorf("binder_request = %q, want the spec whole", got)
	}
	if again := ts.launch(ctx, "/build/custom/Org/Repo/v1", nil); again.Events[0].Message != "Found built image, launching...\n" {
		t.Errorf("the same spec again: %+v, want its image found", again.Events)
	}
	if other := ts.launch(ctx, "/build/custom/Org/Repo/v2", nil); collapse(other.phases())[0] != sse.PhaseWaiting {
		t.Errorf("another spec: phases %v, want a build of its own", other.phases())
	}
	if banned := ts.launch(ctx, "/build/custom/Evil/x", nil); banned.last().Phase != sse.PhaseFailed {
		t.Errorf("banned_specs apply to extra providers too: %+v", banned.Events)
	}
	if st := ts.Stats(); st.BuildsStarted != 2 || st.Banned != 1 {
		t.Errorf("stats %+v, want 2 builds and 1 banned", st)
	}
}

func TestWireFailedBuildIsNotCached(t *testing.T) {
	cfg := fast()
	cfg.FailSpecs = "broken"
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	for i := 1; i <= 2; i++ {
		r := ts.launch(ctx, "/build/gh/org/broken/HEAD", nil)
		want := []string{sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseFailed}
		if got := collapse(r.phases()); !slices.Equal(got, want) {
			t.Fatalf("attempt %d phases = %v; want %v", i, got, want)
		}
		if !strings.Contains(r.last().Message, "returned a non-zero code") {
			t.Errorf("failure message %q is not repo2docker's", r.last().Message)
		}
		ts.waitFor(t, "build end", func(s Stats) bool { return s.BuildsFailed == int64(i) })
	}
	if st := ts.Stats(); st.BuildsStarted != 2 || st.Launches != 0 {
		t.Errorf("stats %+v; want a second build after the failure and no launch", st)
	}
}

func TestWireBuiltSpecsLaunchAtOnce(t *testing.T) {
	cfg := fast()
	cfg.BuiltSpecs = "^gh/org/popular/"
	ts := startServer(t, cfg)
	r := ts.launch(testCtx(t), "/build/gh/org/popular/HEAD", nil)
	want := []string{sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}
	if got := collapse(r.phases()); !slices.Equal(got, want) {
		t.Fatalf("phases = %v; want %v", got, want)
	}
	if st := ts.Stats(); st.BuildsStarted != 0 || st.BuiltImages != 1 {
		t.Errorf("stats %+v; want no build and one built image", st)
	}
}

// readAll reads a whole /build response, for answers that must end, and
// how long the stream stayed open after its last event.
func (ts *testServer) readAll(t *testing.T, path string, hdr http.Header) (*http.Response, []sse.Payload, time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out []sse.Payload
	rd := sse.NewReader(resp.Body)
	last := time.Now()
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			return resp, out, time.Since(last)
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if ev.IsComment() {
			continue
		}
		p, err := ev.Decode()
		if err != nil {
			t.Fatalf("decoding %q: %v", ev.Data, err)
		}
		out = append(out, p)
		last = time.Now()
	}
}

func TestWireRejections(t *testing.T) {
	cfg := fast()
	cfg.BannedSpecs = `org/evil.*`
	cfg.BuildTokenSecret = testSecret
	ts := startServer(t, cfg)
	es := http.Header{"Accept": {"text/event-stream"}}
	tests := map[string]struct {
		path string
		hdr  http.Header
		want sse.Payload
	}{
		"a request without the event-stream Accept gets a 400 failed event": {
			path: "/build/gh/org/repo/HEAD", hdr: http.Header{"Accept": {"text/html"}},
			want: sse.Payload{Phase: sse.PhaseFailed, StatusCode: 400, Message: "Missing Accept header: text/event-stream\n"},
		},
		"an unknown provider gets BinderHub's message without a status code": {
			path: "/build/svn/org/repo/HEAD", hdr: es,
			want: sse.Payload{Phase: sse.PhaseFailed, Message: "No provider found for prefix svn\n"},
		},
		"a malformed spec gets the provider's message": {
			path: "/build/gh/org/repo", hdr: es,
			want: sse.Payload{Phase: sse.PhaseFailed, Message: `Spec is not of the form "user/repo/ref", provided: "org/repo". Did you mean "org/repo/HEAD"?` + "\n"},
		},
		"a banned spec gets BinderHub's ban message, matched case-insensitively": {
			path: "/build/gh/Org/Evil-Miner/HEAD", hdr: es,
			want: sse.Payload{Phase: sse.PhaseFailed, Message: "Sorry, Org/Evil-Miner/HEAD is not allowed to launch. Please contact admins for more info!"},
		},
		"an invalid build token gets a 403 failed event": {
			path: "/build/gh/org/repo/HEAD?build_token=not.a.jwt", hdr: es,
			want: sse.Payload{Phase: sse.PhaseFailed, StatusCode: 403, Message: "Invalid build token\n"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, events, _ := ts.readAll(t, tc.path, tc.hdr)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("status %d, content type %q; want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if len(events) != 1 || events[0] != tc.want {
				t.Errorf("events = %+v; want exactly %+v", events, tc.want)
			}
		})
	}
	st := ts.Stats()
	if st.Rejected != int64(len(tests)) || st.Banned != 1 || st.BuildTokensRejected != 1 || st.BuildsStarted != 0 {
		t.Errorf("stats %+v; want %d rejected, 1 banned, 1 bad token, no build", st, len(tests))
	}
}

func TestWireBuildTokenAccepted(t *testing.T) {
	cfg := fast()
	cfg.BuildTokenSecret = testSecret
	cfg.BuiltSpecs = "."
	ts := startServer(t, cfg)
	tok := signToken(t, testSecret, jwt.SigningMethodHS256, jwt.MapClaims{
		"aud": "gh/org/repo/HEAD", "origin": "mybinder.org", "exp": time.Now().Add(time.Minute).Unix(),
	})
	r := ts.launch(testCtx(t), "/build/gh/org/repo/HEAD?build_token="+tok, http.Header{"Origin": {"https://mybinder.org"}})
	if r.last().Phase != sse.PhaseReady {
		t.Fatalf("phases %v, err %v; want a launch", r.phases(), r.Err)
	}
	if st := ts.Stats(); st.BuildTokensAccepted != 1 || st.BuildTokensRejected != 0 {
		t.Errorf("stats %+v; want one accepted token", st)
	}
}

// Repeated build_token parameters: tornado's get_argument, which
// BinderHub's BuildHandler uses, reads the last one.
func TestWireRepeatedBuildTokenReadsTheLast(t *testing.T) {
	cfg := fast()
	cfg.BuildTokenSecret = testSecret
	cfg.BuiltSpecs = "."
	ts := startServer(t, cfg)
	tok := signToken(t, testSecret, jwt.SigningMethodHS256, jwt.MapClaims{
		"aud": "gh/org/repo/HEAD", "origin": "mybinder.org", "exp": time.Now().Add(time.Minute).Unix(),
	})
	r := ts.launch(testCtx(t), "/build/gh/org/repo/HEAD?build_token="+tok+"&build_token=forged", http.Header{"Origin": {"https://mybinder.org"}})
	if last := r.last(); last.Phase != sse.PhaseFailed || last.StatusCode != 403 {
		t.Fatalf("phases %v, err %v; want the last (invalid) token refused with 403", r.phases(), r.Err)
	}
}

func TestWireKeepalivesAndReadyHold(t *testing.T) {
	cfg := fast()
	cfg.KeepaliveInterval = 20 * time.Millisecond
	cfg.ReadyHold = 500 * time.Millisecond
	cfg.BuiltSpecs = "."
	ts := startServer(t, cfg)
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, ts.URL+"/build/gh/org/repo/HEAD", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := sse.NewReader(resp.Body)
	afterReady, sawReady := 0, false
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.IsComment() && ev.Comment != "keepalive" {
			t.Errorf("comment %q; want keepalive", ev.Comment)
		}
		if sawReady {
			if !ev.IsComment() {
				t.Errorf("event after ready: %s", ev.Data)
			}
			afterReady++
		}
		if ev.Phase == sse.PhaseReady {
			sawReady = true
			// The launch is over; only the stream is held.
			ts.waitFor(t, "the launch to end during the hold", func(s Stats) bool {
				return s.LaunchesInProgress == 0 && s.ActiveStreams == 1
			})
		}
	}
	if !sawReady || afterReady == 0 {
		t.Errorf("ready %v, %d keepalives after it; want the stream held open with keepalives, then closed", sawReady, afterReady)
	}
}

func TestWirePoolQueuesWatchersSilently(t *testing.T) {
	cfg := fast()
	cfg.Pool = 4 // two watchers, each with its log stream
	cfg.BuildTime = time.Second
	ts := startServer(t, cfg)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	var a []launchResult
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			r := ts.launch(ctx, "/build/gh/org/a/HEAD", nil)
			mu.Lock()
			a = append(a, r)
			mu.Unlock()
		})
	}
	ts.waitFor(t, "pool full", func(s Stats) bool { return s.PoolSlotsInUse == 4 })
	var third, other launchResult
	wg.Go(func() { third = ts.launch(ctx, "/build/gh/org/a/HEAD", nil) })
	wg.Go(func() { other = ts.launch(ctx, "/build/gh/org/b/HEAD", nil) })
	mid := ts.waitFor(t, "two queued", func(s Stats) bool { return s.Queued == 2 })
	if mid.BuildsStarted != 1 || mid.ActiveBuildWatchers != 4 {
		t.Errorf("stats %+v; want b's build waiting for slots and 4 watchers", mid)
	}
	wg.Wait()

	// Both queued requests saw only "waiting" until a's build ended and
	// its watchers let go of their slots; then each one's submit created
	// its pod: b's first build, and a's second, since a's first pod was
	// gone (BinderHub dedups by pod name only).
	want := []string{sse.PhaseWaiting, sse.PhaseFetching, sse.PhaseBuilding, sse.PhaseBuilt, sse.PhaseLaunching, sse.PhaseReady}
	if got := collapse(third.phases()); !slices.Equal(got, want) {
		t.Errorf("queued watcher of a: phases %v; want %v", got, want)
	}
	if got := collapse(other.phases()); !slices.Equal(got, want) {
		t.Errorf("b: phases %v; want %v", got, want)
	}
	for _, r := range a {
		if r.last().Phase != sse.PhaseReady {
			t.Errorf("watcher of a: phases %v", r.phases())
		}
	}
	if st := ts.Stats(); st.BuildsStarted != 3 || st.PeakQueued < 2 || st.PoolSlotsInUse != 0 {
		t.Errorf("stats %+v; want three builds (a twice, b), peak queue 2, pool empty", st)
	}
}

func TestWireOtherEndpoints(t *testing.T) {
	cfg := fast()
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := ts.client.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/health"); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Errorf("/health = %d %s", code, body)
	}
	var versions map[string]any
	code, body := get("/versions")
	if err := json.Unmarshal([]byte(body), &versions); code != 200 || err != nil || versions["binderhub"] != Version || versions["builder_info"] == nil {
		t.Errorf("/versions = %d %s", code, body)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("/nope = %d; want 404", code)
	}

	if r := ts.launch(ctx, "/build/gh/org/repo/HEAD", nil); r.last().Phase != sse.PhaseReady {
		t.Fatalf("launch: %v %v", r.phases(), r.Err)
	}
	_, metrics := get("/metrics")
	// What BinderHub's /metrics serves after one launch (prometheus_client
	// names: a Counter gets _total and a _created gauge; see metrics.go).
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, metrics)
	}
	want := map[string]string{
		"binderhub_build_time_seconds":          "HISTOGRAM",
		"binderhub_build_time_seconds_created":  "GAUGE",
		"binderhub_build_count_total":           "COUNTER",
		"binderhub_build_count_created":         "GAUGE",
		"binderhub_launch_time_seconds":         "HISTOGRAM",
		"binderhub_launch_time_seconds_created": "GAUGE",
		"binderhub_launch_count_total":          "COUNTER",
		"binderhub_launch_count_created":        "GAUGE",
		"binderhub_inprogress_builds":           "GAUGE",
		"binderhub_inprogress_launches":         "GAUGE",
		"binderhub_github_rate_limit_remaining": "GAUGE",
	}
	got := map[string]string{}
	for name, f := range families {
		got[name] = f.GetType().String()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/metrics families (-want +got):\n%s", diff)
	}
	for _, line := range []string{
		`binderhub_build_count_total{provider="GitHub",repo="https://github.com/org/repo",status="success"} 1`,
		`binderhub_launch_count_total{provider="GitHub",repo="https://github.com/org/repo",status="success"} 1`,
		`binderhub_launch_count_created{provider="GitHub",repo="https://github.com/org/repo",status="success"} `,
		`binderhub_launch_time_seconds_bucket{retries="0",status="success",le="600"} 1`,
		`binderhub_build_time_seconds_bucket{status="success",le="7200"} 1`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s:\n%s", line, metrics)
		}
	}

	var stats map[string]any
	_, body = get("/_sim/stats")
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("/_sim/stats: %v: %s", err, body)
	}
	for _, k := range []string{"requests", "active_build_watchers", "peak_build_watchers", "builds_started",
		"builds_failed", "launches", "launch_failures", "active_streams", "queued", "tokens_issued"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("/_sim/stats lacks %q", k)
		}
	}
	if stats["builds_started"] != 1.0 {
		t.Errorf("builds_started = %v; want 1", stats["builds_started"])
	}

	if code, _ := get("/_sim/reset"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /_sim/reset = %d; want 405", code)
	}
	resp, err := ts.client.Post(ts.URL+"/_sim/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := ts.Stats(); st.Requests != 0 || st.BuildsStarted != 0 || st.BuiltImages != 0 {
		t.Errorf("stats after reset %+v; want zero", st)
	}
	// The built image was forgotten: the next launch builds again.
	if r := ts.launch(ctx, "/build/gh/org/repo/HEAD", nil); r.Events[0].Phase != sse.PhaseWaiting {
		t.Errorf("launch after reset: %v; want a new build", r.phases())
	}
}

func TestCloseEndsStreamsAndBuilds(t *testing.T) {
	cfg := fast()
	cfg.BuildTime = time.Hour
	cfg.KeepaliveInterval = 10 * time.Millisecond
	ts := startServer(t, cfg)
	res := make(chan launchResult, 1)
	go func() { res <- ts.launch(testCtx(t), "/build/gh/org/slow/HEAD", nil) }()
	ts.waitFor(t, "build running", func(s Stats) bool { return s.BuildsInProgress == 1 })
	ts.Close()
	r := <-res
	if r.last().Phase == sse.PhaseReady {
		t.Errorf("a build of an hour finished: %v", r.phases())
	}
	if st := ts.Stats(); st.BuildsInProgress != 0 {
		t.Errorf("builds in progress after Close: %d", st.BuildsInProgress)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := map[string]Config{
		"a pool too small for one watcher": {Pool: 1},
		"a negative build time":            {BuildTime: -time.Second},
		"a broken fail-specs regex":        {FailSpecs: "("},
		"a broken banned-specs regex":      {BannedSpecs: "[a"},
		"too much CPU burn per watcher":    {BurnCPU: time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if s, err := New(cfg); err == nil {
				s.Close()
				t.Errorf("New(%+v) succeeded", cfg)
			}
		})
	}
}

func ExampleServer() {
	srv, err := New(Config{BuildTime: 50 * time.Millisecond, LaunchTime: 10 * time.Millisecond, ReadyHold: time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	fmt.Println(srv.Stats().Pool)
	// Output: 64
}

func TestHandlerOnAnotherHTTPServerEndsWithClose(t *testing.T) {
	cfg := fast()
	cfg.BuiltSpecs = "."
	cfg.ReadyHold = time.Hour
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	client := &http.Client{Transport: &http.Transport{}}
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, hs.URL+"/build/gh/org/repo/HEAD", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("stream ended before ready: %v", err)
		}
		if ev.Phase == sse.PhaseReady {
			break
		}
	}
	// The stream is held for an hour; Close must end it so the
	// http server can shut down.
	srv.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("reading the rest of the held stream: %v", err)
	}
	resp.Body.Close()
	hs.Close()
	client.CloseIdleConnections()
}

func TestBurnCPUWatchers(t *testing.T) {
	cfg := fast()
	cfg.BurnCPU = 5 * time.Millisecond
	ts := startServer(t, cfg)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if r := ts.launch(ctx, "/build/gh/org/hot/HEAD", nil); r.last().Phase != sse.PhaseReady {
				t.Errorf("launch with CPU burn: %v %v", r.phases(), r.Err)
			}
		})
	}
	wg.Wait()
}

func TestWireLaunchRetriesThenFailsUnderLoad(t *testing.T) {
	cfg := fast()
	cfg.BuildTime = time.Hour // the watchers stay for the whole test
	cfg.CPUCapacity = 1       // two watchers: every launch runs at half speed
	cfg.BuiltSpecs = "^gh/other/"
	cfg.LaunchTime = 100 * time.Millisecond
	cfg.LaunchTimeout = 60 * time.Millisecond
	cfg.LaunchRetries = 2
	cfg.LaunchRetryDelay = 10 * time.Millisecond
	ts := startServer(t, cfg)
	ctx, cancel := context.WithCancel(testCtx(t))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 {
		wg.Go(func() { ts.launch(ctx, "/build/gh/org/slow/HEAD", nil) })
	}
	ts.waitFor(t, "two watchers", func(s Stats) bool { return s.ActiveBuildWatchers == 2 })

	r := ts.launch(ctx, "/build/gh/other/repo/HEAD", nil)
	var retried bool
	for _, e := range r.Events {
		retried = retried || (e.Phase == sse.PhaseLaunching && e.Message == "Launch attempt 1 failed, retrying...\n")
	}
	last := r.last()
	if !retried || last.Phase != sse.PhaseFailed || last.StatusCode != 500 || !strings.Contains(last.Message, "took too long to launch") {
		t.Errorf("events %+v; want a retry, then a 500 failed event", r.Events)
	}
	st := ts.Stats()
	if st.LaunchRetries != 1 || st.LaunchFailures != 1 || st.SlowedLaunches != 2 || st.LoadFactor != 2 {
		t.Errorf("stats %+v; want 1 retry, 1 failure, 2 slowed attempts at load factor 2", st)
	}
}

// BinderHub's check_build_token and check_rate_limit (base.py): a request
// without a token is allowed and counted per client address, a valid token
// skips the limit, an expired one is refused with 403 whatever the limit.
func TestWireRateLimitPerAddressSkippedForValidTokens(t *testing.T) {
	cfg := fast()
	cfg.BuildTokenSecret = testSecret
	cfg.BuiltSpecs = "."
	cfg.RateLimit = 2
	ts := startServer(t, cfg)
	token := func(exp time.Duration) string {
		return signToken(t, testSecret, jwt.SigningMethodHS256, jwt.MapClaims{
			"aud": "gh/org/repo/HEAD", "origin": "mybinder.org", "exp": time.Now().Add(exp).Unix(),
		})
	}
	from := func(ip string) http.Header {
		return http.Header{"Origin": {"https://mybinder.org"}, "X-Real-Ip": {ip}}
	}
	valid := "/build/gh/org/repo/HEAD?build_token=" + token(time.Minute)
	bare := "/build/gh/org/repo/HEAD"
	steps := []struct {
		what, path, ip string
		want           sse.Payload // the last event; only phase and status code are compared
		remaining      string      // x-ratelimit-remaining, "" when the limit does not apply
	}{
		{"first launch without a token", bare, "203.0.113.1", sse.Payload{Phase: sse.PhaseReady}, "1"},
		{"second launch without a token", bare, "203.0.113.1", sse.Payload{Phase: sse.PhaseReady}, "0"},
		{"a valid token skips the limit", valid, "203.0.113.1", sse.Payload{Phase: sse.PhaseReady}, ""},
		{"an expired token is refused, not rate limited", "/build/gh/org/repo/HEAD?build_token=" + token(-time.Minute), "203.0.113.1", sse.Payload{Phase: sse.PhaseFailed, StatusCode: 403}, ""},
		{"a third launch without a token is over the limit", bare, "203.0.113.1", sse.Payload{Phase: sse.PhaseFailed, StatusCode: 429}, ""},
		{"another address has its own window", bare, "203.0.113.2", sse.Payload{Phase: sse.PhaseReady}, "1"},
		{"the address is the rightmost X-Forwarded-For without X-Real-Ip", bare, "", sse.Payload{Phase: sse.PhaseReady}, "1"},
	}
	for _, st := range steps {
		hdr := from(st.ip)
		if st.ip == "" {
			hdr = http.Header{"Origin": {"https://mybinder.org"}, "X-Forwarded-For": {"203.0.113.1, 198.51.100.9"}}
		}
		r := ts.launch(testCtx(t), st.path, hdr)
		if got := r.last(); got.Phase != st.want.Phase || got.StatusCode != st.want.StatusCode {
			t.Errorf("%s: last event %+v (phases %v, err %v); want phase %s status %d", st.what, got, r.phases(), r.Err, st.want.Phase, st.want.StatusCode)
		}
		if got := r.Header.Get("X-Ratelimit-Remaining"); got != st.remaining {
			t.Errorf("%s: x-ratelimit-remaining %q, want %q", st.what, got, st.remaining)
		}
		if st.want.StatusCode == 429 && r.last().Message != "Rate limit exceeded. Try again in 3600 seconds.\n" {
			t.Errorf("%s: message %q, want BinderHub's", st.what, r.last().Message)
		}
	}
	if st := ts.Stats(); st.RateLimited != 1 || st.BuildTokensRejected != 1 || st.BuildTokensAccepted != 1 {
		t.Errorf("stats: rate limited %d, tokens rejected %d, accepted %d; want 1, 1, 1", st.RateLimited, st.BuildTokensRejected, st.BuildTokensAccepted)
	}
	ts.Reset()
	if r := ts.launch(testCtx(t), bare, from("203.0.113.1")); r.last().Phase != sse.PhaseReady {
		t.Errorf("after reset: phases %v; want the window forgotten", r.phases())
	}
}

// A /build request other than GET gets what tornado makes of BinderHub's
// BuildHandler for it (serveBuildNotGet): a 200 text/event-stream answer,
// empty for a preflight that accepts an event stream, a failed event
// otherwise; none of them is a launch or takes a rate limit slot.
func TestBuildAnswersOtherMethodsAsTornado(t *testing.T) {
	ts := startServer(t, Config{BuildTime: 50 * time.Millisecond, RateLimit: 1})
	tests := []struct {
		method, accept string
		wantCode       int // of the failed event; 0: no body
		wantMessage    string
	}{
		{http.MethodOptions, "text/event-stream", 0, ""},
		{http.MethodOptions, "*/*", 400, "Missing Accept header: text/event-stream\n"},
		{http.MethodHead, "text/event-stream", 0, ""}, // a 405 event, whose body HEAD drops
		{http.MethodPost, "text/event-stream", 405, "Method Not Allowed\n"},
		{"PROPFIND", "text/event-stream", 405, "Method Not Allowed\n"},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, ts.URL+"/build/gh/org/repo/HEAD", nil)
		req.Header.Set("Accept", tc.accept)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("%s (Accept %s): %d %q, want 200 text/event-stream", tc.method, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if tc.wantCode == 0 {
			if len(body) != 0 {
				t.Errorf("%s (Accept %s): body %q, want none", tc.method, tc.accept, body)
			}
			continue
		}
		var p sse.Payload
		data, _ := strings.CutPrefix(strings.TrimSpace(string(body)), "data: ")
		if err := json.Unmarshal([]byte(data), &p); err != nil || p.Phase != sse.PhaseFailed ||
			p.StatusCode != tc.wantCode || p.Message != tc.wantMessage {
			t.Errorf("%s (Accept %s): body %q, want a failed event %d %q", tc.method, tc.accept, body, tc.wantCode, tc.wantMessage)
		}
	}
	if st := ts.Stats(); st.Requests != 0 {
		t.Errorf("%d launch requests counted, want none", st.Requests)
	}
	// The one launch the rate limit allows is still there.
	if r := ts.launch(context.Background(), "/build/gh/org/repo/HEAD", nil); r.last().Phase != sse.PhaseReady {
		t.Errorf("the launch after them: %v, want ready", r.phases())
	}
}
