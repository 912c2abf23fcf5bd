package gate_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
)

// BinderHub's API-only mode (enable_api_only_mode, ?build_only=true): for
// an image that exists it answers one "ready" event ("Done! Found built
// image") and ends the request (binderhub/builder.py BuildHandler.get,
// `if image_found: if build_only: emit ready ... return`); after a build
// it sends "ready" in place of "built" and returns as well. That is a
// finished launch, not BinderHub breaking the stream: the client must not
// get a failed event after its ready, and the spec's breaker must not
// count a failure, or a few API-only builds of a repository lock every
// user out of it.
func TestBuildOnlyLaunchIsNotABinderHubFault(t *testing.T) {
	var requests atomic.Int64
	hub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Query().Get("build_only") == "true" {
			fmt.Fprint(w, `data: {"phase": "ready", "imageName": "r2d-o-r:abc", "message": "Done! Found built image\n"}`+"\n\n")
			return // BinderHub's handler returns: the response ends
		}
		fmt.Fprint(w, `data: {"phase": "built", "imageName": "r2d-o-r:abc", "message": "Found built image, launching...\n"}`+"\n\n")
		fmt.Fprint(w, `data: {"phase": "ready", "message": "server running", "url": "http://hub/user/x/", "token": "t"}`+"\n\n")
	})
	up, _ := url.Parse(httptestServer(t, hub))
	l := testLaunch()
	l.BreakerFailures = 1
	g, err := gate.New(gate.Config{Upstream: up, Policies: gate.StaticPolicies(l, gate.Global{})})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptestServer(t, g)

	// An API client reads until the stream ends.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv+"/build/gh/o/r/HEAD?build_only=true", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	rd := sse.NewReader(resp.Body)
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !e.IsComment() {
			phases = append(phases, e.Phase)
		}
	}
	resp.Body.Close()
	if len(phases) != 1 || phases[0] != sse.PhaseReady {
		t.Errorf("build_only launch got phases %v, want only BinderHub's ready", phases)
	}

	// A user's launch of the same repository afterwards.
	before := requests.Load()
	r := launchURL(t.Context(), http.DefaultClient, srv+"/build/gh/o/r/HEAD", clientIP(1), nil, nil)
	if r.ready == nil || requests.Load() == before {
		t.Errorf("launch after a build_only launch: %v %+v, want it to reach BinderHub and be ready (not the breaker's answer)", r.phases(), r.failed)
	}
}
