package evaluate

import (
	"time"

	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
)

// FromSnapshot is the policy view of an immutable snapshot at now. Every
// repository reference goes through the shared spec parser, so a pod meets
// the same ban whichever way it spells the repository. parser names the
// site's extra provider prefixes (nil: BinderHub's built-in ones only).
func FromSnapshot(s *snapshot.Snapshot, parser *spec.Parser, now time.Time) Policies {
	return snapshotPolicies{s: s, parser: parser, now: now}
}

// snapshotPolicies adapts a snapshot to Policies: it holds no policy of
// its own, only the parser and the time lookups are made at.
type snapshotPolicies struct {
	s      *snapshot.Snapshot
	parser *spec.Parser
	now    time.Time
}

func (v snapshotPolicies) BanURL(u string) (Ban, bool, error) {
	r, err := spec.ParseRepoURL(u)
	if err != nil {
		return Ban{}, false, err
	}
	h, ok := v.s.BanRepo(r, v.now)
	return fromHit(h), ok, nil
}

func (v snapshotPolicies) BanRequest(req string) (Ban, bool, error) {
	sp, err := v.parser.ParseRequest(req)
	if err != nil {
		return Ban{}, false, err
	}
	// Ban checks the spec as spelled too, so BinderHub-style patterns that
	// match a provider spelling apply to user pods as they do at the edge.
	h, ok := v.s.Ban(sp, v.now)
	return fromHit(h), ok, nil
}

func (v snapshotPolicies) BuildFor(u string) BuildPolicy {
	l := snapshot.DefaultLaunch()
	if r, err := spec.ParseRepoURL(u); err == nil {
		l = v.s.LaunchRepo(r)
	}
	return BuildPolicy{
		Policy:                l.Policy,
		Mode:                  l.Mode,
		Resources:             l.Build.Resources,
		ActiveDeadlineSeconds: l.Build.ActiveDeadlineSeconds,
	}
}

func fromHit(h match.BanHit) Ban {
	return Ban{Policy: h.Policy, Rule: h.Rule, Message: h.Message, Mode: h.Mode, Repo: string(h.Repo)}
}
