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
	events    []sse.Payload // events the build has sent so far: its log, then for a failure the pod's status
	changed   chan struct{} // closed and replaced when events grows or the build ends
	running   chan struct{} // closed when the pod leaves Pending: its container has started
	done      chan struct{} // closed when the build ends and the pod is deleted
	isRunning bool
	ended     bool
	failed    bool
}

// submission is one request's two tasks in BinderHub's build pool
// (builder.py BuildHandler.get): pool.submit(build.submit), queued before
// "waiting", and, once that submit's watch reports the pod Running,
// pool.submit(build.stream_logs). Each task holds one worker of the pool
// from when it starts to when it returns. The Server owns both: the
// futures are never cancelled, so they run whether the request is still
// there or not.
type submission struct {
	t       target
	fail    bool
	granted chan struct{} // closed once the submit runs, pod is set and it watches it
	stop    chan struct{} // closed with stopped: BuildExecutor.stop set stop_event
	logs    chan struct{} // closed when the log task streams the request's own pod

	// Guarded by Server.mu.
	pod      *buildPod // the pod the submit created or found; nil before it ran
	logPod   *buildPod // the pod the log task streams to the request, set with logs
	stopped  bool      // stop_event is set: BuildHandler.on_finish ran
	left     bool      // the client went away while its handler waited on its build queue
	watching bool      // the handler is still in its "while not done: await q.get()" loop
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

// wait returns after d (d < 0: never), when ch or ch2 is closed, or with an error
// when the client or the server goes away, sending keepalives meanwhile.
// tick, when not nil, is called on every tick of burn.
func (st *stream) wait(d time.Duration, ch, ch2 <-chan struct{}, burn <-chan time.Time, tick func()) error {
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
		case <-ch2:
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

func (st *stream) sleep(d time.Duration) error { return st.wait(d, nil, nil, nil, nil) }

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
		if s.launch(st, l) {
			_ = st.sleep(s.cfg.ReadyHold)
		}
		return
	}

	s.mu.Lock()
	s.stats.ActiveBuildWatchers++
	s.stats.PeakBuildWatchers = max(s.stats.PeakBuildWatchers, s.stats.ActiveBuildWatchers)
	s.stats.PeakLoadFactor = max(s.stats.PeakLoadFactor, s.loadFactorLocked())
	sub := s.submitLocked(t, s.cfg.fail != nil && s.cfg.fail.MatchString(key))
	s.mu.Unlock()
	log.Debug("build submitted", "image", t.Image)

	// BuildHandler.on_finish → build.stop() when the handler finishes: at
	// its end here, or for a client gone during the ready hold when the
	// hold is over (tornado notices nothing until a write fails, and the
	// 60 s sleep writes only keepalives, whose failure keep_alive ignores).
	var holdCut time.Time
	left := false
	defer func() {
		if left {
			return // on_finish waits for the next emit: see watch
		}
		if !holdCut.IsZero() {
			s.stopAt(sub, holdCut)
			return
		}
		s.stopBuild(sub)
	}()
	failed, err := s.watch(st, sub)
	if err != nil {
		left = true
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
		holdCut = s.hold(st)
		return
	}
	if st.send(imageEvent(t.Image, false, false)) != nil {
		return
	}
	if s.launch(st, l) {
		holdCut = s.hold(st)
	}
}

// hold keeps the stream open for ReadyHold; if the client leaves first it
// returns when the hold would have ended, else the zero time.
func (s *Server) hold(st *stream) time.Time {
	end := time.Now().Add(s.cfg.ReadyHold)
	if st.sleep(s.cfg.ReadyHold) != nil {
		return end
	}
	return time.Time{}
}

// submitLocked queues a request's build submit in the pool; s.mu must be
// held. It is submitted before "waiting" is sent, as BinderHub does, so a
// request that leaves at once still has its build.
func (s *Server) submitLocked(t target, fail bool) *submission {
	sub := &submission{t: t, fail: fail, granted: make(chan struct{}), stop: make(chan struct{}),
		logs: make(chan struct{}), watching: true}
	s.wg.Add(1)
	go s.runSubmit(sub)
	return sub
}

// runSubmit is build.py KubernetesBuildExecutor.submit run by a pool
// worker. It takes its worker when the pool's FIFO queue reaches it,
// creates the pod (or on a 409 attaches to the pod of that name), and
// unless stop_event is already set watches it, holding the worker until
// the pod is deleted (DELETED → BUILT or FAILED → return). Once stop_event
// is set it still holds the worker until its current watch, started every
// timeout_seconds=30 (Config.WatchTimeout), runs out: the loop checks
// stop_event only between watches. When the watch reports the pod Running
// the handler queues the request's log task (builder.py: "start capturing
// build logs once the pod is running"); here the submit queues it on the
// handler's behalf, which is the same moment.
//
// One simplification: a pod whose build ends with no watcher is deleted
// at its end; BinderHub leaves it until the next watcher or the cleaner
// (KubernetesCleaner, every 60 s) deletes it, so a submit in that gap
// attaches to the finished pod instead of building again.
func (s *Server) runSubmit(sub *submission) {
	defer s.wg.Done()
	// ThreadPoolExecutor: the submit takes one worker when it starts...
	if !s.pool.acquire(s.ctx, nil, 1) {
		return // Close
	}
	// ...and frees it when it returns.
	defer s.pool.release(1)
	s.mu.Lock()
	pod := s.builds[sub.t.Image]
	if onSubmit(pod != nil) == submitCreate {
		pod = &buildPod{
			t:         sub.t,
			fail:      sub.fail,
			buildTime: s.buildTimeLocked(sub.t.Image),
			changed:   make(chan struct{}),
			running:   make(chan struct{}),
			done:      make(chan struct{}),
		}
		s.builds[sub.t.Image] = pod
		s.stats.BuildsStarted++
		s.stats.BuildsInProgress++
		s.wg.Add(1)
		go s.runBuild(pod)
	}
	sub.pod = pod
	keep := keepsWorker(sub.stopped)
	if keep {
		s.stats.PodWatches++
		s.stats.PeakPodWatches = max(s.stats.PeakPodWatches, s.stats.PodWatches)
	}
	s.mu.Unlock()
	if !keep {
		return
	}
	defer func() {
		s.mu.Lock()
		s.stats.PodWatches--
		s.mu.Unlock()
	}()
	close(sub.granted)
	watchStart := time.Now()

	// Pending until the container starts, then Running: the handler's
	// pool.submit(build.stream_logs), unless it has finished meanwhile.
	select {
	case <-pod.running:
		s.mu.Lock()
		if !sub.stopped {
			s.wg.Add(1)
			go s.runLogs(sub)
		}
		s.mu.Unlock()
	case <-pod.done:
	case <-s.ctx.Done():
		return
	}

	burn := s.burner()
	defer stopTicker(burn)
	var timeout <-chan time.Time
	stop := sub.stop
	for {
		select {
		case <-pod.done:
			s.podDeleted(sub)
			return
		case <-stop:
			// stop_event is read after the current watch's timeout_seconds.
			t := time.NewTimer(s.cfg.WatchTimeout - time.Since(watchStart)%s.cfg.WatchTimeout)
			defer t.Stop()
			timeout, stop = t.C, nil
		case <-timeout:
			return
		case <-tickC(burn):
			s.burnCPU()
		case <-s.ctx.Done():
			return
		}
	}
}

// podDeleted is the submit's DELETED event: it puts BUILT or FAILED on the
// request's queue and returns. A handler whose client has gone fails to
// emit it, raises Finish, and on_finish sets stop_event.
func (s *Server) podDeleted(sub *submission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.left {
		sub.watching = false
		s.stopLocked(sub)
	}
}

// runLogs is build.py KubernetesBuildExecutor.stream_logs run by a pool
// worker: read_namespaced_pod_log(follow=True, tail_lines=100) of the pod
// of the build's name, whichever build that pod is now. No pod (404) or a
// pod still Pending (400) raises at once and frees the worker; the
// handler has long left its loop by then, so the error reaches no one.
// Otherwise it forwards the log until the container ends, and returns at
// the first line that comes after stop_event was set. The lines go to the
// request only while its handler still waits on its own pod's build.
func (s *Server) runLogs(sub *submission) {
	defer s.wg.Done()
	// The log task takes its own worker, behind everything queued before it...
	if !s.pool.acquire(s.ctx, nil, 1) {
		return
	}
	// ...and frees it when stream_logs returns or raises.
	defer s.pool.release(1)
	s.mu.Lock()
	pod := s.builds[sub.t.Image]
	if pod == nil || !pod.isRunning || sub.stopped {
		// 404 / 400, or stop_event already set: the first line returns.
		s.mu.Unlock()
		return
	}
	s.stats.LogStreams++
	s.stats.PeakLogStreams = max(s.stats.PeakLogStreams, s.stats.LogStreams)
	if sub.watching && pod == sub.pod {
		sub.logPod = pod
		close(sub.logs)
	}
	seen := len(pod.events)
	if seen > 0 {
		s.emitLocked(sub, pod)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stats.LogStreams--
		s.mu.Unlock()
	}()
	burn := s.burner()
	defer stopTicker(burn)
	for {
		s.mu.Lock()
		n, ended, changed := len(pod.events), pod.ended, pod.changed
		if n > seen {
			if sub.stopped {
				s.mu.Unlock()
				return // "if self.stop_event.is_set(): return"
			}
			seen = n
			s.emitLocked(sub, pod)
		}
		s.mu.Unlock()
		if ended {
			return // the container ended: follow=True stops
		}
	wait:
		for {
			select {
			case <-changed:
				break wait
			case <-tickC(burn):
				s.burnCPU()
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// emitLocked is a log line reaching the request's handler: if it is still
// in its loop for this pod but its client has gone, emit raises
// StreamClosedError → Finish, and on_finish sets stop_event.
func (s *Server) emitLocked(sub *submission, pod *buildPod) {
	if sub.left && sub.watching && pod == sub.pod {
		s.stopLocked(sub)
	}
}

// stopLocked is BuildExecutor.stop: set stop_event ("not related to
// stopping the build"). s.mu must be held; it may be called more than once.
func (s *Server) stopLocked(sub *submission) {
	if !sub.stopped {
		sub.stopped = true
		close(sub.stop)
	}
}

// stopBuild is BuildHandler.on_finish → build.stop() now.
func (s *Server) stopBuild(sub *submission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(sub)
}

// stopAt calls stopBuild at when, or at Close.
func (s *Server) stopAt(sub *submission, when time.Time) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(time.Until(when))
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
		s.stopBuild(sub)
	}()
}

// watch is the handler's build loop: "waiting", then silence until its
// submit has a worker and a pod (PENDING and RUNNING emit nothing), the
// pod's log while the request's log task streams it, and the end when the
// pod is deleted. It reports whether the build failed; an error means the
// client went away first: its handler waits on until its next emit fails.
func (s *Server) watch(st *stream, sub *submission) (failed bool, err error) {
	start := time.Now()
	s.metrics.buildsInProgress.Inc()
	defer s.metrics.buildsInProgress.Dec()
	defer func() {
		s.mu.Lock()
		s.stats.ActiveBuildWatchers--
		if err != nil {
			// Not on_finish yet: the handler is blocked on q.get() and
			// finds out at its next emit (emitLocked, podDeleted).
			sub.left = true
		} else {
			sub.watching = false
		}
		s.mu.Unlock()
	}()

	if err := st.send(sse.Payload{Phase: sse.PhaseWaiting, Message: "Waiting for build to start...\n"}); err != nil {
		return false, err
	}
	// A request queued behind the pool waits here through any number of
	// builds of its image: only its own submit decides what it watches.
	if err := st.wait(-1, sub.granted, nil, nil, nil); err != nil {
		return false, err
	}
	pod := sub.pod
	sent := 0
	if err := s.follow(st, sub, pod, &sent); err != nil {
		return false, err
	}

	s.mu.Lock()
	failed = pod.failed
	rest := pod.events[min(sent, len(pod.events)):]
	streaming := sub.logPod == pod
	s.mu.Unlock()
	if failed {
		if !streaming && len(rest) > 0 {
			// Without its log task the request gets only the submit's
			// FAILED status, no repo2docker line.
			rest = rest[len(rest)-1:]
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
	s.metrics.observeBuild(status, providerName(pod.t.Provider), pod.t.RepoURL, time.Since(start))
	return failed, nil
}

// follow sends the pod's log from *sent on while the request's log task
// streams it, until the pod is deleted. Failure events wait for the pod's
// end.
func (s *Server) follow(st *stream, sub *submission, pod *buildPod, sent *int) error {
	for {
		s.mu.Lock()
		streaming := sub.logPod == pod
		evs := pod.events[*sent:]
		changed, done := pod.changed, pod.done
		s.mu.Unlock()
		logs := sub.logs
		if streaming {
			logs = nil
			for _, p := range evs {
				if p.Phase == sse.PhaseFailed {
					break
				}
				if err := st.send(p); err != nil {
					return err
				}
				*sent++
			}
		}
		select {
		case <-done:
			return nil
		default:
		}
		if err := st.wait(-1, changed, logs, nil, nil); err != nil {
			return err
		}
	}
}

// burner ticks ten times a second while a pool worker is busy, nil when
// BurnCPU is 0; stop it when the worker is free.
func (s *Server) burner() *time.Ticker {
	if s.cfg.BurnCPU <= 0 {
		return nil
	}
	return time.NewTicker(100 * time.Millisecond)
}

func tickC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTicker(t *time.Ticker) {
	if t != nil {
		t.Stop()
	}
}

// burnCPU spins for one tick of a busy pool worker's cost: a twentieth of
// BurnCPU, so a request's pod watch and log stream together burn BurnCPU
// a second.
func (s *Server) burnCPU() {
	end := time.Now().Add(s.cfg.BurnCPU / 20)
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
		if !im.isRunning {
			// The container has started: the pod's watchers see Running.
			im.isRunning = true
			close(im.running)
		}
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
