package fakebinder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Moving refs. BinderHub resolves a launch's ref on every request
// (repoproviders.py, GitHubRepoProvider.get_resolved_ref: GET
// /repos/{user}/{repo}/commits/{ref} → sha), so after a push the same
// launch URL (.../HEAD) names a new commit, a new image tag and a new
// build, while the previous commit's image stays in the registry and a
// launch of .../<old sha> finds it (builder.py BuildHandler.get: image
// found → "Found built image, launching..." and no build). SetRef is that
// push: the simulator keeps built images per commit already (images are
// keyed by a name that ends in the resolved ref).

// ErrRef marks a ref the simulator cannot move.
var ErrRef = errors.New("invalid ref move")

// SetRef moves the ref of providerSpec ("gh/org/repo/HEAD") to commit, a
// full 40-hex sha as GitHub's API returns, as a push would. buildTime,
// when positive, is how long a build of that commit runs (a simulation
// knob, like Config.BuildTime, so a test can make the new commit's build
// long and an earlier one short). Refs of providers without commits
// (zenodo, figshare, dataverse, hydroshare, ckan) and refs that are full
// shas already cannot move.
func (s *Server) SetRef(providerSpec, commit string, buildTime time.Duration) error {
	provider, spec, ok := strings.Cut(strings.TrimPrefix(providerSpec, "/build/"), "/")
	if !ok {
		return fmt.Errorf("%w: %q is not <provider>/<spec>", ErrRef, providerSpec)
	}
	t, err := parseTarget(provider, strings.TrimRight(spec, "/"))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRef, providerSpec, err)
	}
	switch {
	case t.ref == refKey{}:
		return fmt.Errorf("%w: %s has no ref that moves (provider %s)", ErrRef, providerSpec, provider)
	case fullSHA.MatchString(t.ref.ref):
		return fmt.Errorf("%w: %s names a commit, which does not move", ErrRef, providerSpec)
	case !fullSHA.MatchString(commit):
		return fmt.Errorf("%w: commit %q is not a full 40-character lowercase hex sha", ErrRef, commit)
	case buildTime < 0:
		return fmt.Errorf("%w: build time %v is negative", ErrRef, buildTime)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[t.ref] = commit
	if buildTime > 0 {
		s.buildTimes[imageName(t.Slug, commit)] = buildTime
	}
	s.log.Debug("ref moved", "spec", providerSpec, "commit", commit)
	return nil
}

// movedLocked resolves the refs moved by SetRef; s.mu must be held.
func (s *Server) movedLocked(k refKey) (string, bool) {
	sha, ok := s.refs[k]
	return sha, ok
}

// buildTimeLocked is how long a build of image runs; s.mu must be held.
func (s *Server) buildTimeLocked(image string) time.Duration {
	if d, ok := s.buildTimes[image]; ok {
		return d
	}
	return s.cfg.BuildTime
}

// RefMove is the body of POST /_sim/refs.
type RefMove struct {
	Spec      string `json:"spec"`       // "gh/org/repo/HEAD"
	Commit    string `json:"commit"`     // 40-hex sha
	BuildTime string `json:"build_time"` // optional Go duration, e.g. "30s"
}

// serveRefs answers POST /_sim/refs: a RefMove is applied with SetRef.
func (s *Server) serveRefs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var m RefMove
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		http.Error(w, "POST /_sim/refs takes {\"spec\": \"gh/org/repo/HEAD\", \"commit\": \"<40 hex>\", \"build_time\": \"30s\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	var d time.Duration
	if m.BuildTime != "" {
		var err error
		if d, err = time.ParseDuration(m.BuildTime); err != nil {
			http.Error(w, "build_time: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if err := s.SetRef(m.Spec, m.Commit, d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, m)
}
