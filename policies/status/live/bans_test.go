package live_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/status/live"
)

func TestAddBanCounts(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)
	now := t0.Add(10 * time.Second)
	pods := []v1alpha1.MatchedPod{{Namespace: "ns", Name: "build-x", Role: v1alpha1.PodRoleBuild, Action: v1alpha1.PodActionReported}}
	tests := map[string]struct {
		cur         v1alpha1.RepoBanStatus
		add         live.BanCounts
		wantChanged bool
		want        v1alpha1.RepoBanStatus
	}{
		"nothing new is no write": {
			cur:  v1alpha1.RepoBanStatus{BlockedLaunches: 4, CountersReportedAt: &metav1.Time{Time: t0}},
			want: v1alpha1.RepoBanStatus{BlockedLaunches: 4, CountersReportedAt: &metav1.Time{Time: t0}},
		},
		"a first report starts the counts": {
			add:         live.BanCounts{Blocked: 3, Refused: 1},
			wantChanged: true,
			want:        v1alpha1.RepoBanStatus{BlockedLaunches: 3, RefusedPods: 1, CountersReportedAt: &metav1.Time{Time: now}},
		},
		"another replica's share adds to what is there, and the webhook's fields stay": {
			cur:         v1alpha1.RepoBanStatus{MatchedPods: pods, MatchedPodCount: 1, BlockedLaunches: 3, RefusedPods: 1, CountersReportedAt: &metav1.Time{Time: t0}},
			add:         live.BanCounts{Blocked: 2},
			wantChanged: true,
			want:        v1alpha1.RepoBanStatus{MatchedPods: pods, MatchedPodCount: 1, BlockedLaunches: 5, RefusedPods: 1, CountersReportedAt: &metav1.Time{Time: now}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.cur.DeepCopy()
			got, changed := live.AddBanCounts(tc.cur, tc.add, now.Add(400*time.Millisecond))
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("AddBanCounts (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, &tc.cur); d != "" {
				t.Errorf("AddBanCounts modified its input:\n%s", d)
			}
		})
	}
}
