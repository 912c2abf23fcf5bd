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

// buildPod is one build pod: BinderHub names it after the image's build
// slug and ref, so one image name has at most one pod at a time. Fields
// are guarded by Server.mu.
type buildPod struct {
	t         target
	fail      bool          // --fail-specs: the build will fail
	buildTime time.Duration // how long the build runs (Config.BuildTime, or SetRef's)
	events    []sse.Payload // events the build has sent so far
	changed   chan struct{} // closed and replaced when events grows or the build ends
	done      chan struct{} // closed when the build ends
	ended     bool
	failed    bool
}

// submission is one request's pool.submit(build.submit) (builder.py
// BuildHandler.get): it waits in the build pool's queue and, once it has
// its worker, creates the build pod or attaches to the one of that name.
// The Server owns it: the future is never cancelled, so it runs whether
// its request is still there or not.
type submission struct {
	t       target
	fail    bool
	granted chan struct{} // closed once pod is set and the request owns the slots

	// Guarded by Server.mu.
	pod      *buildPod // the pod the submit created or found; nil before it ran
	stopped  bool      // the request ended: build.stop() set stop_event
	released bool      // the request gave its slots back
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

	// The registry lookup, then _get_build_only, whose 400 comes after it
	// whether the image was found or not (builder.py BuildHandler.get).
	s.mu.Lock()
	found := s.built[t.Image]
	if !found && s.cfg.built != nil && s.cfg.built.MatchString(key) {
		s.built[t.Image] = true
		found = true
	}
	s.mu.Unlock()
	bo, err := buildOnly(r.URL.Query()["build_only"], s.cfg.APIOnlyMode)
	if err != nil {
		// HTTPError(400) → send_error: one failed event, then finish.
		reject(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusBadRequest, Message: err.Error() + "\n"}, "build_only")
		return
	}
	if found {
		// "Found built image": launch, or with build_only "ready" and
		// return at once.
		if st.send(imageEvent(t.Image, true, bo)) != nil || bo {
			return
		}
		s.launchThenHold(st, l)
		return
	}

	s.mu.Lock()
	s.stats.ActiveBuildWatchers++
	s.stats.PeakBuildWatchers = max(s.stats.PeakBuildWatchers, s.stats.ActiveBuildWatchers)
	s.stats.PeakLoadFactor = max(s.stats.PeakLoadFactor, s.loadFactorLocked())
	sub := s.submitLocked(t, s.cfg.fail != nil && s.cfg.fail.MatchString(key))
	s.mu.Unlock()
	log.Debug("build submitted", "image", t.Image)

	failed, err := s.watch(st, sub)
	if err != nil {
		return
	}
	if bo {
		// builder.py: "if build_only: return", after a failure as well,
		// without the 60 s sleep.
		if !failed {
			_ = st.send(imageEvent(t.Image, false, true))
		}
		return
	}
	if failed {
		// BinderHub sleeps after a failed build as after a launch.
		_ = st.sleep(s.cfg.ReadyHold)
		return
	}
	if st.send(imageEvent(t.Image, false, false)) != nil {
		return
	}
	s.launchThenHold(st, l)
}

// submitLocked queues a request's build submit in the pool; s.mu must be
// held. It is submitted before "waiting" is sent, as BinderHub does, so a
// request that leaves at once still has its build.
func (s *Server) submitLocked(t target, fail bool) *submission {
	sub := &submission{t: t, fail: fail, granted: make(chan struct{})}
	s.wg.Add(1)
	go s.runSubmit(sub)
	return sub
}

// runSubmit is build.py KubernetesBuildExecutor.submit run by a pool
// worker: wait in the queue for the worker's slots, create the pod (or on
// a 409 attach to the pod of that name), and hand the slots to the
// request, which watches until the pod is deleted. If the request has
// ended meanwhile, the pod is created all the same and the slots go back
// at once (the watch loop checks stop_event first).
//
// One simplification: a pod whose build ends with no watcher is deleted
// here at its end; BinderHub leaves it until the next watcher or the
// cleaner (KubernetesCleaner, every 60 s) deletes it, so a submit in that
// gap attaches to the finished pod instead of building again.
func (s *Server) runSubmit(sub *submission) {
	defer s.wg.Done()
	if !s.pool.acquire(s.ctx, nil, 2) {
		return // Close
	}
	s.mu.Lock()
	pod := s.builds[sub.t.Image]
	if onSubmit(pod != nil) == submitCreate {
		pod = &buildPod{
			t:         sub.t,
			fail:      sub.fail,
			buildTime: s.buildTimeLocked(sub.t.Image),
			changed:   make(chan struct{}),
			done:      make(chan struct{}),
		}
		s.builds[sub.t.Image] = pod
		s.stats.BuildsStarted++
		s.stats.BuildsInProgress++
		s.wg.Add(1)
		go s.runBuild(pod)
	}
	keep := keepsWorker(sub.stopped)
	if keep {
		sub.pod = pod
	}
	s.mu.Unlock()
	if !keep {
		s.pool.release(2)
		return
	}
	close(sub.granted)
}

// stopWatching is BuildHandler.on_finish → build.stop() and the end of the
// request's watch: a submit still queued will build and let go; slots the
// request holds go back to the pool. It may be called more than once.
func (s *Server) stopWatching(sub *submission) {
	s.mu.Lock()
	sub.stopped = true
	release := sub.pod != nil && !sub.released
	sub.released = sub.released || release
	s.mu.Unlock()
	if release {
		s.pool.release(2)
	}
}

// watch is one build watcher: "waiting", a silent wait until its submit
// has a worker and a pod, then the pod's events as they come, until the
// pod is deleted. It reports whether the build failed; an error means the
// stream ended first.
func (s *Server) watch(st *stream, sub *submission) (failed bool, err error) {
	start := time.Now()
	s.metrics.buildsInProgress.Inc()
	defer s.metrics.buildsInProgress.Dec()
	defer func() {
		s.mu.Lock()
		s.stats.ActiveBuildWatchers--
		s.mu.Unlock()
	}()
	defer s.stopWatching(sub)

	if err := st.send(sse.Payload{Phase: sse.PhaseWaiting, Message: "Waiting for build to start...\n"}); err != nil {
		return false, err
	}
	// A request queued behind the pool waits here through any number of
	// builds of its image: only its own submit decides what it watches.
	if err := st.wait(-1, sub.granted, nil, nil); err != nil {
		return false, err
	}
	pod := sub.pod
	sent := 0
	if err := s.follow(st, pod, &sent); err != nil {
		return false, err
	}
	// The build's end may trail its failure events by a moment.
	select {
	case <-pod.done:
	case <-st.ctx.Done():
		return false, st.ctx.Err()
	}
	// The pod is deleted: the watch returns and frees its worker before
	// the handler sends built and launches.
	s.stopWatching(sub)

	s.mu.Lock()
	failed = pod.failed
	rest := pod.events[min(sent, len(pod.events)):]
	s.mu.Unlock()
	if failed {
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
	s.metrics.observeBuild(status, providerName(pod.t.Provider), pod.t.RepoURL, time.Since(start))
	return failed, nil
}

// follow streams the build's events from *sent on until the build ends,
// burning real CPU for the watcher if configured.
func (s *Server) follow(st *stream, im *buildPod, sent *int) error {
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
				// The caller sends the failure once the build has ended.
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
func (s *Server) runBuild(im *buildPod) {
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
	// The watchers' cleanup deletes the pod; a success has pushed the
	// image, a failure pushed nothing, so the next request builds again.
	if s.builds[im.t.Image] == im {
		delete(s.builds, im.t.Image)
	}
	if !im.failed {
		s.built[im.t.Image] = true
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
