package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// A LaunchPolicy for one big repository that allows its builds 3 h and
// holds its launches up to 3 h: the edge's one launch route must not cut
// those streams at the site-wide policy's 1 h + 30 m + margin. Envoy
// resets a stream past the route's max_stream_duration, so the leader
// and every held launch of that repository would end with a broken
// stream ("Event stream closed unexpectedly") long before the gate's own
// hold timeout or build limit says anything.
func TestEdgeStreamCapCoversEveryPolicysLongestLaunch(t *testing.T) {
	long := metav1.Duration{Duration: 3 * time.Hour}
	lp := v1alpha1.LaunchPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: "big-repo"},
		Spec: v1alpha1.LaunchPolicySpec{
			Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/big/repo"}},
			Collapse: &v1alpha1.CollapseSpec{HoldTimeout: &long},
			Breaker:  &v1alpha1.BreakerSpec{MaxBuildDuration: &long},
		},
	}
	s, errs := snapshot.New(nil, []v1alpha1.LaunchPolicy{lp})
	if len(errs) > 0 {
		t.Fatalf("snapshot: %v", errs)
	}
	l := EdgeLaunch(s)
	if l.MaxStreamDuration != 0 && l.MaxStreamDuration < long.Duration {
		t.Errorf("edge max stream duration %v: Envoy cuts launches of gh/big/repo whose policy allows builds and holds of %v", l.MaxStreamDuration, long.Duration)
	}
}
