package fakebinder

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// image is one image name's build: a build in progress, or the marker of a
// built image. Fields are guarded by Server.mu.
type image struct {
	state     imageState
	t         target
	fail      bool          // --fail-specs: the build will fail
	buildTime time.Duration // how long the build runs (Config.BuildTime, or SetRef's)
	started   bool          // a watcher got pool slots: the build pod exists
	watchers  int           // requests attached to this build
	events    []sse.Payload // events the build has sent so far
	changed   chan struct{} // closed and replaced when events grows or the build ends
	done      chan struct{} // closed when the build ends
	ended     bool
	failed    bool
}

// stream is one /build response: events and keepalive comments from one
// goroutine, the handler's.
type stream struct {
	ctx context.Context
	w   *sse.Writer
	rw  http.ResponseWriter
	ka  *time.Ticker

	fault *compiledFault // a test-injected fault, nil for BinderHub's behaviour
	sent  int            // events sent
}

func (st *stream) send(p sse.Payload) error {
	if err := st.strike(); err != nil {
		return err
	}
	if err := st.w.Write(sse.NewEvent(p)); err != nil {
		return err
	}
	st.sent++
	return nil
}

// wait returns after d (d < 0: never), when ch is closed, or with an error
// when the client or the server goes away, sending keepalives meanwhile.
// tick, when not nil, is called on every tick of burn.
func (st *stream) wait(d time.Duration, ch <-chan struct{}, burn <-chan time.Time, tick func()) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-timeout:
			return nil
		case <-ch:
			return nil
		case <-st.ctx.Done():
			return st.ctx.Err()
		case <-st.ka.C:
			if err := st.w.Write(sse.Keepalive); err != nil {
				return err
			}
		case <-burn:
			tick()
		}
	}
}

func (st *stream) sleep(d time.Duration) error { return st.wait(d, nil, nil, nil) }

// serveBuildNotGet answers a /build/<provider>/<spec> request other than
// GET the way tornado runs BinderHub's BuildHandler for it
// (RequestHandler._execute): a method tornado does not support is a 405;
// then BuildHandler.prepare refuses a request whose Accept lacks
// text/event-stream (400); then OPTIONS runs BaseHandler.options, which
// does nothing (an empty 200: a CORS preflight passes), and any other
// method tornado's unimplemented-method 405. BuildHandler.send_error
// turns each error into a failed event on a 200 text/event-stream answer
// (it never sets the status), and tornado sends HEAD answers without
// their body (so does net/http). No method but GET reaches
// BuildHandler.get, so none is rate limited or counted as a launch.
func serveBuildNotGet(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/build/")
	if provider, rawSpec, _ := strings.Cut(rest, "/"); provider == "" || rawSpec == "" {
		http.NotFound(w, r) // not BuildHandler's route, as in serveBuild
		return
	}
	// BuildHandler.set_default_headers, set for every answer.
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fail := func(code int, msg string) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(sse.Failed(code, msg+"\n").Frame()) // send_error adds the newline
	}
	switch r.Method {
	case http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodPut, http.MethodOptions:
	default: // not in tornado's SUPPORTED_METHODS
		fail(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if !acceptsEventStream(r.Header.Get("Accept")) {
		fail(http.StatusBadRequest, "Missing Accept header: text/event-stream")
		return
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	fail(http.StatusMethodNotAllowed, "Method Not Allowed")
}

// serveBuild answers GET /build/<provider>/<spec> the way BinderHub's
// BuildHandler does, check by check and in the same order.
func (s *Server) serveBuild(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/build/")
	provider, rawSpec, _ := strings.Cut(rest, "/")
	if provider == "" || rawSpec == "" {
		// BinderHub's route is /build/([^/]+)/(.+): anything else is a
		// plain 404 page, not an event stream.
		http.NotFound(w, r)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	s.mu.Lock()
	s.stats.Requests++
	s.stats.ActiveStreams++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stats.ActiveStreams--
		s.mu.Unlock()
	}()
	fault := s.faultFor(provider + "/" + rawSpec)
	if fault != nil && s.beforeStream(ctx, w, fault) {
		return
	}

	// BinderHub sets text/event-stream on every response of the handler,
	// errors included, and always answers 200. Its checks run before its
	// first flush, so the headers they set (x-ratelimit-*) are sent.
	var st *stream
	begin := func() {
		if st == nil {
			st = &stream{ctx: ctx, w: sse.Start(w), rw: w, ka: time.NewTicker(s.cfg.KeepaliveInterval), fault: fault}
		}
	}
	defer func() {
		if st != nil {
			st.ka.Stop()
		}
	}()
	log := s.log.With("path", r.URL.EscapedPath())

	reject := func(p sse.Payload, why string) {
		s.mu.Lock()
		s.stats.Rejected++
		s.mu.Unlock()
		log.Debug("rejected launch", "reason", why)
		begin()
		_ = st.send(p)
	}
	if !acceptsEventStream(r.Header.Get("Accept")) {
		reject(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusBadRequest,
			Message: "Missing Accept header: text/event-stream\n"}, "accept")
		return
	}
	haveToken := false
	if s.cfg.BuildTokenSecret != "" {
		// Without a configured secret the simulator ignores build tokens;
		// BinderHub would have generated a random secret and refused them.
		// BuildHandler.get reads self.get_argument("build_token", None):
		// tornado's get_argument returns the last of repeated values.
		var token string
		if vs := r.URL.Query()["build_token"]; len(vs) > 0 {
			token = vs[len(vs)-1]
		}
		ok, err := checkBuildToken(s.cfg.BuildTokenSecret, token,
			provider+"/"+rawSpec, tokenOrigin(r.Header.Get("Origin"), r.Host), time.Now())
		if err != nil {
			s.mu.Lock()
			s.stats.BuildTokensRejected++
			s.mu.Unlock()
			log.Info("invalid build token", "err", err)
			reject(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusForbidden, Message: "Invalid build token\n"}, "build token")
			return
		}
		if ok {
			haveToken = true
			s.mu.Lock()
			s.stats.BuildTokensAccepted++
			s.mu.Unlock()
		}
	}
	ip := clientIP(r.Header, r.RemoteAddr)
	if s.limiter != nil && !haveToken {
		// BaseHandler.check_rate_limit: per client address, skipped for a
		// request with a valid build token.
		s.mu.Lock()
		win, ok := s.limiter.increment(ip, time.Now())
		if !ok {
			s.stats.RateLimited++
		}
		s.mu.Unlock()
		if !ok {
			reject(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusTooManyRequests, Message: s.limiter.exceededMessage() + "\n"}, "rate limit")
			return
		}
		h := w.Header()
		h.Set("X-Ratelimit-Remaining", strconv.Itoa(win.remaining))
		h.Set("X-Ratelimit-Reset", strconv.FormatInt(win.reset.Unix(), 10))
		h.Set("X-Ratelimit-Limit", strconv.Itoa(s.limiter.limit))
	}
	begin()
	extra := slices.Contains(s.cfg.ExtraProviders, provider)
	if !knownProvider(provider) && !extra {
		reject(sse.Payload{Phase: sse.PhaseFailed, Message: fmt.Sprintf("No provider found for prefix %s\n", provider)}, "provider")
		return
	}
	spec := strings.TrimRight(rawSpec, "/")
	var t target
	var err error
	if extra {
		t = parseExtra(provider, spec)
	} else {
		s.mu.Lock()
		t, err = resolveTarget(provider, spec, s.movedLocked)
		s.mu.Unlock()
	}
	if err != nil {
		reject(sse.Payload{Phase: sse.PhaseFailed, Message: err.Error() + "\n"}, "spec")
		return
	}
	if s.cfg.banned != nil && s.cfg.banned.MatchString(spec) {
		s.mu.Lock()
		s.stats.Banned++
		s.mu.Unlock()
		// BinderHub's ban event: no status_code, no trailing newline.
		reject(sse.Payload{Phase: sse.PhaseFailed,
			Message: fmt.Sprintf("Sorry, %s is not allowed to launch. Please contact admins for more info!", spec)}, "banned")
		return
	}
	key := provider + "/" + spec
	l := launchReq{
		t:       t,
		request: "v2/" + provider + "/" + spec,
		persist: "v2/" + provider + "/" + t.ResolvedSpec,
		host:    launchHost(r),
		ip:      ip,
	}

	s.mu.Lock()
	im := s.images[t.Image]
	cur := stateAbsent
	if im != nil {
		cur = im.state
	}
	preBuilt := s.cfg.built != nil && s.cfg.built.MatchString(key)
	next, what := onArrival(cur, preBuilt)
	switch what {
	case arriveFoundBuilt:
		if im == nil {
			im = &image{t: t}
			s.images[t.Image] = im
		}
		im.state = next
		s.mu.Unlock()
		if st.send(builtEvent(t.Image, true)) != nil {
			return
		}
		s.launchThenHold(st, l)
		return
	case arriveStartBuild:
		im = &image{
			state:     next,
			t:         t,
			fail:      s.cfg.fail != nil && s.cfg.fail.MatchString(key),
			buildTime: s.buildTimeLocked(t.Image),
			changed:   make(chan struct{}),
			done:      make(chan struct{}),
		}
		s.images[t.Image] = im
	}
	im.watchers++
	s.stats.ActiveBuildWatchers++
	s.stats.PeakBuildWatchers = max(s.stats.PeakBuildWatchers, s.stats.ActiveBuildWatchers)
	s.stats.PeakLoadFactor = max(s.stats.PeakLoadFactor, s.loadFactorLocked())
	s.mu.Unlock()
	log.Debug("build watcher attached", "image", t.Image, "arrival", what.String())

	failed, err := s.watch(st, im)
	if err != nil || failed {
		if err == nil {
			// BinderHub sleeps after a failed build as after a launch.
			_ = st.sleep(s.cfg.ReadyHold)
		}
		return
	}
	if st.send(builtEvent(t.Image, false)) != nil {
		return
	}
	s.launchThenHold(st, l)
}

// watch is one build watcher: "waiting", a wait in line for two pool
// slots, then the build's events as they come. It reports whether the
// build failed; an error means the stream ended first.
func (s *Server) watch(st *stream, im *image) (failed bool, err error) {
	start := time.Now()
	s.metrics.buildsInProgress.Inc()
	defer s.metrics.buildsInProgress.Dec()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		im.watchers--
		s.stats.ActiveBuildWatchers--
		if im.watchers == 0 && s.images[im.t.Image] == im {
			if onWatchersGone(im.state, im.started) == stateAbsent {
				delete(s.images, im.t.Image)
			}
		}
	}()

	if err := st.send(sse.Payload{Phase: sse.PhaseWaiting, Message: "Waiting for build to start...\n"}); err != nil {
		return false, err
	}
	sent := 0
	got := s.acquire(st, im)
	if got {
		s.mu.Lock()
		if !im.started && !im.ended {
			im.started = true
			s.stats.BuildsStarted++
			s.stats.BuildsInProgress++
			s.wg.Add(1)
			go s.runBuild(im)
		}
		s.mu.Unlock()
		err = s.follow(st, im, &sent)
		s.pool.release(2)
		if err != nil {
			return false, err
		}
	}
	// The build's end may trail its failure events by a moment.
	select {
	case <-im.done:
	case <-st.ctx.Done():
		return false, st.ctx.Err()
	}

	s.mu.Lock()
	failed = im.failed
	rest := im.events[min(sent, len(im.events)):]
	s.mu.Unlock()
	if failed {
		if !got {
			// Released from the queue by the build's end: it only sees
			// the failure, not the log it never streamed.
			for len(rest) > 0 && rest[0].Phase != sse.PhaseFailed {
				rest = rest[1:]
			}
		}
		for _, p := range rest {
			if err := st.send(p); err != nil {
				return true, err
			}
		}
	}
	status := "success"
	if failed {
		status = "failure"
	}
	s.metrics.observeBuild(status, providerName(im.t.Provider), im.t.RepoURL, time.Since(start))
	return failed, nil
}

// acquire waits for two pool slots (the watcher's pod watch and log
// stream threads), sending keepalives meanwhile. It reports false when the
// build ended or the stream went away first.
func (s *Server) acquire(st *stream, im *image) bool {
	got := make(chan bool, 1)
	ctx, cancel := context.WithCancel(st.ctx)
	defer cancel()
	go func() { got <- s.pool.acquire(ctx, im.done, 2) }()
	for {
		select {
		case ok := <-got:
			return ok
		case <-st.ka.C:
			if st.w.Write(sse.Keepalive) != nil {
				cancel()
				if <-got {
					s.pool.release(2)
				}
				return false
			}
		}
	}
}

// follow streams the build's events from *sent on until the build ends,
// burning real CPU for the watcher if configured.
func (s *Server) follow(st *stream, im *image, sent *int) error {
	var burn <-chan time.Time
	if s.cfg.BurnCPU > 0 {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		burn = t.C
	}
	for {
		s.mu.Lock()
		evs := im.events[*sent:]
		ended, changed := im.ended, im.changed
		s.mu.Unlock()
		for _, p := range evs {
			if p.Phase == sse.PhaseFailed {
				// The caller sends the failure: queued watchers get it too.
				return nil
			}
			if err := st.send(p); err != nil {
				return err
			}
			*sent++
		}
		if ended {
			return nil
		}
		if err := st.wait(-1, changed, burn, s.burnCPU); err != nil {
			return err
		}
	}
}

// burnCPU spins for a tenth of BurnCPU: one tick of a watcher's cost.
func (s *Server) burnCPU() {
	end := time.Now().Add(s.cfg.BurnCPU / 10)
	x := uint64(1)
	for time.Now().Before(end) {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	_ = x
}

// runBuild plays a build's script to its watchers. It is owned by the
// Server: it ends with the build or with Close, whatever the watchers do.
func (s *Server) runBuild(im *image) {
	defer s.wg.Done()
	script := buildScript(im.buildTime, im.t, im.fail)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	sleepUntil := func(at time.Duration) bool {
		timer.Reset(time.Until(start.Add(at)))
		select {
		case <-timer.C:
			return true
		case <-s.ctx.Done():
			return false
		}
	}
	ok := true
	for _, stp := range script {
		if ok = sleepUntil(stp.At); !ok {
			break
		}
		s.mu.Lock()
		im.events = append(im.events, stp.Event)
		close(im.changed)
		im.changed = make(chan struct{})
		s.mu.Unlock()
	}
	if ok {
		ok = sleepUntil(im.buildTime)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	im.ended = true
	im.failed = im.fail || !ok
	im.state = onBuildEnd(im.state, im.failed)
	if im.state == stateAbsent && s.images[im.t.Image] == im {
		delete(s.images, im.t.Image)
	}
	s.stats.BuildsInProgress--
	if im.failed {
		s.stats.BuildsFailed++
	} else {
		s.stats.BuildsSucceeded++
	}
	close(im.changed)
	close(im.done)
	s.log.Debug("build ended", "image", im.t.Image, "failed", im.failed, "took", time.Since(start))
}

// loadFactorLocked is the current launch slow-down; s.mu must be held.
func (s *Server) loadFactorLocked() float64 {
	return loadFactor(int(s.stats.ActiveBuildWatchers), s.cfg.CPUCapacity)
}

func (s *Server) loadFactorNow() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadFactorLocked()
}

// providerName is the provider's display name BinderHub puts in the
// "provider" metric label.
func providerName(p string) string {
	if n, ok := map[string]string{
		"gh": "GitHub", "gist": "Gist", "git": "Git", "gl": "GitLab", "zenodo": "Zenodo",
		"figshare": "Figshare", "hydroshare": "Hydroshare", "dataverse": "Dataverse", "ckan": "CKAN",
	}[p]; ok {
		return n
	}
	return p
}
