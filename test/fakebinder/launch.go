package fakebinder

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/binderguard/binderguard/proxy/sse"
)

// launchReq is what a launch needs from its request.
type launchReq struct {
	t       target
	request string // binder_request, "v2/<provider>/<spec>"
	persist string // binder_persistent_request, with the resolved ref
	host    string // binder_launch_host
	ip      string // binder_client_ip
}

// launch asks the simulated JupyterHub for a server, with BinderHub's
// retries, and sends "ready" with a fresh token and URL. Each attempt's
// work runs slower under the build watchers' load and fails after
// LaunchTimeout. It reports whether ready was sent.
func (s *Server) launch(st *stream, l launchReq) bool {
	s.mu.Lock()
	s.stats.Launches++
	s.stats.LaunchesInProgress++
	s.mu.Unlock()
	s.metrics.launchesInProgress.Inc()
	defer func() {
		s.metrics.launchesInProgress.Dec()
		s.mu.Lock()
		s.stats.LaunchesInProgress--
		s.mu.Unlock()
	}()

	if st.send(sse.Payload{Phase: sse.PhaseLaunching, Message: "Launching server...\n"}) != nil {
		return false
	}
	username := uniqueName(l.t.RepoURL)
	delay := s.cfg.LaunchRetryDelay
	provider := providerName(l.t.Provider)
	for i := range s.cfg.LaunchRetries {
		start := time.Now()
		ok, err := s.launchAttempt(st, username)
		if err != nil {
			return false
		}
		if ok {
			s.metrics.observeLaunchTime("success", strconv.Itoa(i), time.Since(start))
			s.metrics.countLaunch("success", provider, l.t.RepoURL)
			break
		}
		last := i+1 == s.cfg.LaunchRetries
		status := "retry"
		if last {
			status = "failure"
		}
		s.metrics.observeLaunchTime(status, "-1", time.Since(start))
		if last {
			s.metrics.countLaunch("failure", provider, l.t.RepoURL)
			s.mu.Lock()
			s.stats.LaunchFailures++
			s.mu.Unlock()
			// The launcher's HTTPError(500) reaches send_error, which
			// writes one failed event and finishes the response.
			_ = st.send(sse.Payload{Phase: sse.PhaseFailed, StatusCode: http.StatusInternalServerError,
				Message: fmt.Sprintf("Image %s for user %s took too long to launch\n", l.t.Image, username)})
			return false
		}
		s.mu.Lock()
		s.stats.LaunchRetries++
		s.mu.Unlock()
		if st.send(sse.Payload{Phase: sse.PhaseLaunching, Message: fmt.Sprintf("Launch attempt %d failed, retrying...\n", i+1)}) != nil {
			return false
		}
		if st.sleep(delay) != nil {
			return false
		}
		delay *= 2
	}

	serverURL := s.cfg.HubURL + "user/" + username + "/"
	ready := sse.Payload{
		Phase:                   sse.PhaseReady,
		Message:                 "server running at " + serverURL + "\n",
		Image:                   l.t.Image,
		RepoURL:                 l.t.RepoURL,
		Token:                   newToken(),
		BinderRefURL:            l.t.RefURL,
		BinderLaunchHost:        l.host,
		BinderRequest:           l.request,
		BinderPersistentRequest: l.persist,
		BinderClientIP:          l.ip,
		URL:                     serverURL,
	}
	// Counted before sending, so a client that has its ready event also
	// sees it in the stats.
	s.mu.Lock()
	s.stats.LaunchesReady++
	s.stats.TokensIssued++
	s.mu.Unlock()
	return st.send(ready) == nil
}

// launchAttempt runs one attempt: LaunchTime of work, slowed by the load
// factor measured at every tick, with JupyterHub's progress messages on
// the way. It reports false when the attempt timed out.
func (s *Server) launchAttempt(st *stream, username string) (bool, error) {
	clock := launchClock{need: s.cfg.LaunchTime}
	msgs := launchMessages(username)
	// Ticks fine enough to follow the load, coarse enough to stay cheap
	// with hundreds of launches.
	tick := min(max(s.cfg.LaunchTime/20, 5*time.Millisecond), 100*time.Millisecond)
	defer func() {
		if clock.slowed() {
			s.mu.Lock()
			s.stats.SlowedLaunches++
			s.mu.Unlock()
		}
	}()
	last := time.Now()
	for {
		for len(msgs) > 0 && msgs[0].At <= clock.fraction() && (msgs[0].At < 1 || clock.done >= clock.need) {
			if err := st.send(sse.Payload{Phase: sse.PhaseLaunching, Message: msgs[0].Msg}); err != nil {
				return false, err
			}
			msgs = msgs[1:]
		}
		if clock.done >= clock.need {
			return true, nil
		}
		if clock.elapsed >= s.cfg.LaunchTimeout {
			return false, nil
		}
		if err := st.sleep(min(tick, s.cfg.LaunchTimeout-clock.elapsed)); err != nil {
			return false, err
		}
		now := time.Now()
		clock.advance(now.Sub(last), s.loadFactorNow())
		last = now
	}
}

// uniqueName is Launcher.unique_name_from_repo: the repository path,
// escaped, and 8 random characters.
func uniqueName(repoURL string) string {
	path := repoURL
	if u, err := url.Parse(repoURL); err == nil && u.Path != "" {
		path = u.Path
	}
	path = strings.ToLower(strings.ReplaceAll(strings.Trim(strings.TrimSuffix(path, ".git"), "/"), "/", "-"))
	var b strings.Builder
	for _, c := range []byte(path) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "-%02x", c)
		}
	}
	name := b.String()
	if len(name) > 26 {
		name = name[:26]
	}
	return name + "-" + strings.ToLower(rand.Text()[:8])
}

// newToken is like the launcher's token: 16 random bytes, URL-safe base64
// without padding.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
