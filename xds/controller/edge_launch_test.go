package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// The edge has one launch route, so its stream cap (Envoy resets a stream
// past the route's max_stream_duration) must let through the longest
// launch any LaunchPolicy allows: a repository whose policy allows 3 h
// builds and holds must not have its leader and held launches cut at the
// site-wide 1 h + 30 m + margin ("Event stream closed unexpectedly").
func TestEdgeStreamCapCoversEveryPolicysLongestLaunch(t *testing.T) {
	long := metav1.Duration{Duration: 3 * time.Hour}
	bigRepo := func(mode v1alpha1.Mode) v1alpha1.LaunchPolicy {
		return v1alpha1.LaunchPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "big-repo"},
			Spec: v1alpha1.LaunchPolicySpec{
				Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/big/repo"}},
				Mode:     mode,
				Collapse: &v1alpha1.CollapseSpec{HoldTimeout: &long},
				Breaker:  &v1alpha1.BreakerSpec{MaxBuildDuration: &long},
			},
		}
	}
	d := snapshot.DefaultLaunch()
	siteWide := max(d.Breaker.MaxBuildDuration, d.Collapse.HoldTimeout) + launchMargin
	tests := map[string]struct {
		policies []v1alpha1.LaunchPolicy
		want     time.Duration
	}{
		"defaults only: the site-wide cap":                   {want: siteWide},
		"one repository allowed 3 h: its launches fit":       {policies: []v1alpha1.LaunchPolicy{bigRepo("")}, want: long.Duration + launchMargin},
		"one repository's policy only warns: no build limit": {policies: []v1alpha1.LaunchPolicy{bigRepo(v1alpha1.ModeWarn)}, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, errs := snapshot.New(nil, tc.policies)
			if len(errs) > 0 {
				t.Fatalf("snapshot: %v", errs)
			}
			if got := EdgeLaunch(s).MaxStreamDuration; got != tc.want {
				t.Errorf("edge max stream duration %v, want %v", got, tc.want)
			}
		})
	}
}
