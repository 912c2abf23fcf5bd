package gate

import (
	"net/http"
	"strings"
	"time"

	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/sse"
)

// Stale while building (a LaunchPolicy's staleWhileBuilding): while a
// newer commit of a ref such as HEAD builds, a launch of the ref is sent
// to BinderHub as its own launch of the last commit of that ref the gate
// saw reach ready, instead of being held for the whole build. BinderHub
// finds that commit's image and launches it at once. This file learns the
// last good commits and runs those launches; admit (gate.go) decides
// who gets one.

// lastGood is the last commit of one build key's ref that reached ready.
// Guarded by Gate.mu.
type lastGood struct {
	// target is the resolved "<provider>/<spec>" as BinderHub's launch
	// path takes it (from binder_persistent_request: still
	// percent-encoded where the provider's spec is).
	target string
	// since is when the gate first saw it ready: the date of the version
	// users are told they get. seen is the last time; StaleMaxAge counts
	// from it.
	since, seen time.Time
}

// staleLaunch is one launch admitted as stale.
type staleLaunch struct {
	target  string
	version time.Time // lastGood.since
	started time.Time // when the flight building the newer commit began
	turn    collapse.StaleTurn
	probe   chan struct{} // closed when the flight's probing stale launch answers
	pol     Policy        // to admit it again if it falls back
}

// staleOutcome is what a stale launch's upstream stream showed first.
type staleOutcome int

const (
	staleFound     staleOutcome = iota // "Found built image": the image exists
	staleMissing                       // anything else first: the image is gone, or BinderHub refused
	staleBroken                        // no event stream from BinderHub at all
	staleRefused                       // a failed event with a status code: BinderHub refused this client (rate limit, ban_networks), not the image
	staleAbandoned                     // the client left before the answer
)

// probeWait bounds how long a stale launch waits for the flight's probe
// to answer before it is held like any other: BinderHub answers a launch
// of a built image within a second (a ref lookup and a registry check).
const probeWait = 5 * time.Second

// lastGoods are the build keys' last good commits, at most max of them.
// Guarded by Gate.mu.
type lastGoods struct {
	max int
	m   map[string]*lastGood // by key
}

// usable is key's last good commit if it may be launched now in place of
// providerSpec: seen ready within maxAge, and not what the launch asks
// for already.
func (l *lastGoods) usable(key, providerSpec string, maxAge time.Duration, now time.Time) *lastGood {
	lg := l.m[key]
	if lg == nil || now.Sub(lg.seen) > maxAge || lg.target == providerSpec {
		return nil
	}
	return lg
}

// learn records that key's ref resolved to target and reached ready.
func (l *lastGoods) learn(key, target string, now time.Time) {
	if lg := l.m[key]; lg != nil {
		if lg.target == target {
			lg.seen = now
			return
		}
	} else if len(l.m) >= l.max {
		l.evictOldest()
	}
	l.m[key] = &lastGood{target: target, since: now, seen: now}
}

// forget drops key's last good commit if it is still target.
func (l *lastGoods) forget(key, target string) {
	if lg := l.m[key]; lg != nil && lg.target == target {
		delete(l.m, key)
	}
}

// evictOldest forgets the commit seen longest ago. A scan, not an index:
// it runs only when a new key arrives at a full map.
func (l *lastGoods) evictOldest() {
	var oldest string
	var at time.Time
	for k, lg := range l.m {
		if oldest == "" || lg.seen.Before(at) {
			oldest, at = k, lg.seen
		}
	}
	delete(l.m, oldest)
}

// observe learns from an upstream event of a launch of an unresolved ref
// whose policy launches stale: the tag of built's imageName, then the
// commit that ready says the launch resolved to.
func (s *launchStream) observe(e sse.Event) {
	s.judge(e)
	if !s.learn || (e.Phase != sse.PhaseBuilt && e.Phase != sse.PhaseReady) {
		return
	}
	p, err := e.Decode()
	if err != nil {
		return
	}
	if e.Phase == sse.PhaseBuilt {
		s.tag = imageTag(p.ImageName)
		return
	}
	if target, ok := resolvedTarget(p, s.tag, s.spec); ok {
		s.g.mu.Lock()
		s.g.lastGood.learn(s.key, target, time.Now())
		s.g.mu.Unlock()
	}
}

// imageTag is the tag of an image name ("registry:5000/r2d-org-repo:<ref>"
// → "<ref>"); BinderHub tags each image with the resolved ref.
func imageTag(name string) string {
	i := strings.LastIndexByte(name, ':')
	if i < 0 || strings.Contains(name[i:], "/") {
		return ""
	}
	return name[i+1:]
}

// resolvedTarget is the "<provider>/<spec>" of the commit a ready event
// says its launch resolved to, when that differs from what was asked
// (a ref such as HEAD, not a commit): BinderHub's
// binder_persistent_request, checked to name the same repository; else,
// for GitHub and gists, whose resolved spec is "<user>/<repo>/<sha>", the
// request with its ref replaced by the image's tag. providerSpec is the
// launch's own path after /build/, for a ready event without
// binder_request.
func resolvedTarget(p sse.Payload, tag, providerSpec string) (string, bool) {
	reqText := p.BinderRequest
	if reqText == "" {
		reqText = "v2/" + providerSpec
	}
	req, err := spec.ParseRequest(reqText)
	if err != nil {
		return "", false
	}
	if p.BinderPersistentRequest != "" {
		per, err := spec.ParseRequest(p.BinderPersistentRequest)
		if err != nil || per.Provider != req.Provider || per.Repo != req.Repo || per.BuildKey() == req.BuildKey() {
			return "", false
		}
		return per.String(), true
	}
	if tag == "" || (req.Provider != spec.ProviderGitHub && req.Provider != spec.ProviderGist) {
		return "", false
	}
	parts := strings.SplitN(req.Raw, "/", 3)
	if len(parts) != 3 || parts[2] == tag {
		return "", false
	}
	return req.Provider + "/" + parts[0] + "/" + parts[1] + "/" + tag, true
}

// serveStale runs a launch admitted as stale: it waits for the flight's
// probe if another launch is asking BinderHub first, launches the last
// good commit as the client's own request, and falls back to what the
// launch would have been without stale launches (held, usually) if the
// image is missing or the launch fails before ready.
func (g *Gate) serveStale(w http.ResponseWriter, r *http.Request, a *plan) {
	sl := a.stale
	if sl.turn == collapse.StaleWait {
		switch a.f.awaitProbe(r, sl) {
		case staleFound:
		case staleAbandoned:
			g.streamDone(a.key)
			return
		default:
			g.streamDone(a.key)
			g.staleFallback(w, r, a, "probe")
			return
		}
	}
	sent, ok := g.launchStale(w, r, a)
	if ok || r.Context().Err() != nil {
		return
	}
	if sent {
		// The client has the notice and BinderHub's first events: the
		// rest of its answer continues on the same stream.
		w = &sentWriter{ResponseWriter: w}
	}
	g.staleFallback(w, r, a, "failed")
}

// awaitProbe waits for the flight's probing stale launch to answer, and
// says whether this launch may go (becoming the probe itself if the
// probe's client left first).
func (f *flight) awaitProbe(r *http.Request, sl *staleLaunch) staleOutcome {
	g := f.g
	t := time.NewTimer(probeWait)
	defer t.Stop()
	for {
		select {
		case <-sl.probe:
		case <-t.C:
			return staleMissing
		case <-r.Context().Done():
			return staleAbandoned
		case <-g.ctx.Done():
			return staleMissing
		}
		g.mu.Lock()
		if g.flights[f.key] != f || f.stage != collapse.Building {
			g.mu.Unlock()
			return staleMissing // the new image is built (or the build over): admit it again
		}
		sl.turn = collapse.NextStale(f.stale)
		switch sl.turn {
		case collapse.StaleProbe:
			f.startProbeLocked(sl)
		case collapse.StaleWait:
			sl.probe = f.staleProbe // a launch that waited too became the probe
		}
		g.mu.Unlock()
		switch sl.turn {
		case collapse.StaleGo, collapse.StaleProbe:
			return staleFound
		case collapse.StaleHold:
			return staleMissing
		}
	}
}

// startProbeLocked makes sl the flight's probe. Call with g.mu held.
func (f *flight) startProbeLocked(sl *staleLaunch) {
	f.stale.Probing = true
	f.staleProbe = make(chan struct{})
	sl.probe = f.staleProbe
}

// staleAnswered records what a stale launch's first answer showed and, if
// it was the flight's probe, lets the launches waiting for it go on.
func (f *flight) staleAnswered(sl *staleLaunch, out staleOutcome) {
	g := f.g
	g.mu.Lock()
	defer g.mu.Unlock()
	switch out {
	case staleFound:
		f.stale.Verified = true
	case staleMissing:
		f.stale.Failed = true
		// The image is gone or is the one now building: launching it
		// again would start or attach to a build.
		g.lastGood.forget(f.key, sl.target)
	case staleBroken:
		f.stale.Failed = true
	}
	if sl.turn == collapse.StaleProbe && f.staleProbe == sl.probe && sl.probe != nil {
		f.stale.Probing = false
		close(f.staleProbe)
		f.staleProbe = nil
	}
}

// launchStale sends the launch to BinderHub as a launch of the last good
// commit, without the client's build_token (a build token names the spec
// it was issued for, the ref, so BinderHub would refuse it for the
// commit). Only if BinderHub's first event shows the image exists does
// the client get the notice and the stream. sent reports whether the
// client got anything; ok whether it got ready.
func (g *Gate) launchStale(w http.ResponseWriter, r *http.Request, a *plan) (sent, ok bool) {
	sl := a.stale
	ls := &launchStream{g: g, key: a.key}
	defer ls.end()
	// Under the watchdog like every upstream launch: a BinderHub that never
	// answers must not leave this client, and the flight's probe, waiting.
	ctx, uw, stopWatch := g.hub.watch(r.Context())
	defer stopWatch()
	resp, err := g.hub.roundTripTo(ctx, r, sl.target)
	if err != nil {
		if r.Context().Err() != nil {
			a.f.staleAnswered(sl, staleAbandoned)
			return false, false
		}
		g.log.Warn("stale launch: upstream request failed", "key", a.key, "target", sl.target, "err", err)
		a.f.staleAnswered(sl, staleBroken)
		return false, false
	}
	defer resp.Body.Close()
	uw.gotHeaders()
	if !isSSE(resp) {
		a.f.staleAnswered(sl, staleBroken)
		return false, false
	}
	rd := sse.NewReader(uw.body(resp.Body))
	var first sse.Event
	for {
		e, err := rd.Next()
		if err != nil {
			if r.Context().Err() != nil {
				a.f.staleAnswered(sl, staleAbandoned)
			} else {
				a.f.staleAnswered(sl, staleBroken)
			}
			return false, false
		}
		if !launchEvent(e) {
			continue
		}
		uw.event()
		if !e.IsComment() {
			first = e
			break
		}
	}
	if p, err := first.Decode(); err == nil && first.Phase == sse.PhaseFailed && p.StatusCode != 0 {
		// Its own answer, not the image's (a stale launch carries no
		// build_token, so BinderHub's per-IP rate limit applies): it falls
		// back, with its token, and the flight's other launches still try.
		a.f.staleAnswered(sl, staleRefused)
		return false, false
	}
	if !collapse.StaleFound(first) {
		g.log.Info("stale launch: last good image not found; holding launches of this build", "key", a.key, "target", sl.target, "phase", first.Phase)
		a.f.staleAnswered(sl, staleMissing)
		return false, false
	}
	a.f.staleAnswered(sl, staleFound)
	g.m.classify(w, collapse.Stale.String())
	g.m.stale.WithLabelValues(sl.pol.Name).Inc()
	copyResponseHeaders(w.Header(), resp.Header)
	sw := sse.Start(w)
	if sw.Write(collapse.StaleNotice(sl.started, sl.version, time.Now())) != nil || sw.Write(first) != nil {
		return true, false
	}
	for {
		e, err := rd.Next()
		if err != nil {
			// BinderHub closes the stream after ready: that is the end of
			// the launch, not a failure to fall back from.
			return true, ok
		}
		if !launchEvent(e) {
			continue
		}
		uw.event()
		if e.Phase == sse.PhaseFailed && !ok {
			// The launch of the image failed (say, the hub could not start
			// the server): the user waits for the new one instead.
			return true, false
		}
		if sw.Write(e) != nil {
			return true, ok
		}
		if e.Phase == sse.PhaseReady {
			ok = true
			ls.end()
		}
	}
}

// staleFallback admits a stale launch again as a launch of a spec
// without stale launches, and runs it: held behind the build, usually.
func (g *Gate) staleFallback(w http.ResponseWriter, r *http.Request, a *plan, reason string) {
	g.m.staleFallbacks.WithLabelValues(reason).Inc()
	if g.ctx.Err() != nil {
		g.m.classify(w, "reject")
		g.m.shed.WithLabelValues("closing").Inc()
		reject(w, 503, "binderguard is restarting. Please try again in a few seconds.", 5*time.Second)
		return
	}
	// It waited at the gate (for the probe, and for its own stale launch):
	// like a held launch, it must not present a build_token that expired
	// meanwhile, should it now lead or pass.
	r = withBuildToken(r, a.f.heldToken(r, a.providerSpec))
	pol := a.stale.pol
	pol.Launch.Stale = false
	b := g.admit(r, a.providerSpec, pol, time.Now())
	if _, sent := w.(*sentWriter); !sent {
		g.m.classify(w, b.d.Role.String())
	}
	switch b.d.Role {
	case collapse.Reject:
		g.m.shed.WithLabelValues(b.d.Reason).Inc()
		reject(w, b.d.StatusCode, shedMessage(b.d, pol.Key), b.d.RetryAfter)
	case collapse.Pass:
		g.pass(w, r, b.key, false)
	case collapse.Lead:
		g.lead(w, nil, r, b.f, b.lead, b.providerSpec, false)
	case collapse.Follow:
		g.follow(w, r, b)
	}
}

// withBuildToken is r with token as its build_token (none when empty).
func withBuildToken(r *http.Request, token string) *http.Request {
	q := r.URL.Query()
	if q.Get("build_token") == token {
		return r
	}
	r = r.Clone(r.Context())
	if token == "" {
		q.Del("build_token")
	} else {
		q.Set("build_token", token)
	}
	r.URL.RawQuery = q.Encode()
	return r
}

// sentWriter is a ResponseWriter whose status and headers are on the wire
// already: a path that starts its answer again only adds events.
type sentWriter struct {
	http.ResponseWriter
	h http.Header
}

func (s *sentWriter) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}

func (s *sentWriter) WriteHeader(int) {}

// Unwrap lets http.ResponseController flush the real writer.
func (s *sentWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
