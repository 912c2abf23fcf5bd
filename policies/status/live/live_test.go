package live_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/status/live"
)

func TestSum(t *testing.T) {
	hot := live.PolicyName("binder", "hot")
	other := live.PolicyName("binder", "other")
	until := time.Date(2026, 11, 29, 20, 0, 0, 500, time.UTC)
	later := until.Add(time.Minute)
	many := live.Load{Waiters: map[string]int{hot: 0}}
	var wantMany []v1alpha1.HotSpec
	for i := range 20 {
		key := fmt.Sprintf("gh/org/repo%02d/HEAD", i)
		many.Hot = append(many.Hot, live.Spec{Key: key, Policy: hot, Waiters: 100 - i})
		many.Waiters[hot] += 100 - i
		if i < live.MaxHotSpecs {
			wantMany = append(wantMany, v1alpha1.HotSpec{Spec: key, Waiters: int32(100 - i)})
		}
	}
	tests := map[string]struct {
		loads []live.Load
		want  map[string]live.Totals
	}{
		"no replica holds anything": {
			loads: []live.Load{{}, {}},
			want:  map[string]live.Totals{},
		},
		"one spec held on three replicas is one entry with the sum": {
			loads: []live.Load{
				{Waiters: map[string]int{hot: 10}, Hot: []live.Spec{{Key: "gh/org/repo/HEAD", Policy: hot, Waiters: 10, Stage: v1alpha1.BuildStageReleasing}}},
				{Waiters: map[string]int{hot: 7}, Hot: []live.Spec{{Key: "gh/org/repo/HEAD", Policy: hot, Waiters: 7, Stage: v1alpha1.BuildStageBuilding}}},
				{Waiters: map[string]int{hot: 1}, Hot: []live.Spec{{Key: "gh/org/repo/HEAD", Policy: hot, Waiters: 1, Stage: v1alpha1.BuildStageReleasing}}},
			},
			want: map[string]live.Totals{hot: {Waiters: 18, Hot: []v1alpha1.HotSpec{{Spec: "gh/org/repo/HEAD", Waiters: 18, Stage: v1alpha1.BuildStageBuilding}}}},
		},
		"specs go to the policy that governs them, busiest first": {
			loads: []live.Load{
				{Waiters: map[string]int{hot: 3, other: 2}, Hot: []live.Spec{
					{Key: "gh/a/a/HEAD", Policy: hot, Waiters: 1}, {Key: "gh/b/b/HEAD", Policy: hot, Waiters: 2}, {Key: "gh/c/c/HEAD", Policy: other, Waiters: 2},
				}},
				{Waiters: map[string]int{hot: 4}, Hot: []live.Spec{{Key: "gh/a/a/HEAD", Policy: hot, Waiters: 4}}},
			},
			want: map[string]live.Totals{
				hot:   {Waiters: 7, Hot: []v1alpha1.HotSpec{{Spec: "gh/a/a/HEAD", Waiters: 5}, {Spec: "gh/b/b/HEAD", Waiters: 2}}},
				other: {Waiters: 2, Hot: []v1alpha1.HotSpec{{Spec: "gh/c/c/HEAD", Waiters: 2}}},
			},
		},
		"the waiting count covers specs a replica left out of its hot list": {
			loads: []live.Load{{Waiters: map[string]int{hot: 50}, Hot: []live.Spec{{Key: "gh/a/a/HEAD", Policy: hot, Waiters: 30}}}},
			want:  map[string]live.Totals{hot: {Waiters: 50, Hot: []v1alpha1.HotSpec{{Spec: "gh/a/a/HEAD", Waiters: 30}}}},
		},
		"a leader building alone is not hot; an open breaker is, with its latest end in seconds": {
			loads: []live.Load{
				{Hot: []live.Spec{{Key: "gh/alone/repo/HEAD", Policy: hot}, {Key: "gh/broken/repo/HEAD", Policy: hot, BreakerOpenUntil: &until}}},
				{Hot: []live.Spec{{Key: "gh/broken/repo/HEAD", Policy: hot, BreakerOpenUntil: &later}}},
			},
			want: map[string]live.Totals{hot: {Hot: []v1alpha1.HotSpec{
				{Spec: "gh/broken/repo/HEAD", BreakerOpenUntil: &metav1.Time{Time: later.Truncate(time.Second)}},
			}}},
		},
		"the hot list is cut to 16": {
			loads: []live.Load{many},
			want:  map[string]live.Totals{hot: {Waiters: int32(many.Waiters[hot]), Hot: wantMany}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := live.Sum(tc.loads)
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Sum (-want +got):\n%s", d)
			}
		})
	}
}

// The stage of a spec held on several replicas (while Envoy's hash ring
// changes) is the least advanced of the stages of the replicas holding
// its launches.
func TestSumMergesStages(t *testing.T) {
	const key = "gh/org/repo/HEAD"
	hot := live.PolicyName("binder", "hot")
	until := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	held := func(waiters int, stage v1alpha1.BuildStage) live.Load {
		return live.Load{Hot: []live.Spec{{Key: key, Policy: hot, Waiters: waiters, Stage: stage}}}
	}
	tests := map[string]struct {
		loads []live.Load
		want  v1alpha1.BuildStage
	}{
		"one replica's stage is the spec's": {
			loads: []live.Load{held(4, v1alpha1.BuildStageBuilding)},
			want:  v1alpha1.BuildStageBuilding,
		},
		"a replica still building keeps the spec building while another releases": {
			loads: []live.Load{held(1, v1alpha1.BuildStageReleasing), held(1, v1alpha1.BuildStageBuilding)},
			want:  v1alpha1.BuildStageBuilding,
		},
		"the least advanced wins whatever the order and the counts": {
			loads: []live.Load{held(90, v1alpha1.BuildStageReleasing), held(1, v1alpha1.BuildStageStarting), held(9, v1alpha1.BuildStageBuilding)},
			want:  v1alpha1.BuildStageStarting,
		},
		"the spec releases only when every replica holding it releases": {
			loads: []live.Load{held(3, v1alpha1.BuildStageReleasing), held(2, v1alpha1.BuildStageReleasing)},
			want:  v1alpha1.BuildStageReleasing,
		},
		"a replica whose leader builds alone holds nothing and says nothing": {
			loads: []live.Load{held(3, v1alpha1.BuildStageReleasing), held(0, v1alpha1.BuildStageStarting)},
			want:  v1alpha1.BuildStageReleasing,
		},
		"a replica that sends no stage (older than the field) is left out": {
			loads: []live.Load{held(3, ""), held(2, v1alpha1.BuildStageBuilding)},
			want:  v1alpha1.BuildStageBuilding,
		},
		"a stage this version does not know is left out, not written to fail the CRD's enum": {
			loads: []live.Load{held(3, "Pushing"), held(2, v1alpha1.BuildStageReleasing)},
			want:  v1alpha1.BuildStageReleasing,
		},
		"no replica with a stage leaves it unset": {
			loads: []live.Load{held(3, ""), held(2, "Pushing")},
		},
		"a spec listed only for its open breaker has no stage": {
			loads: []live.Load{{Hot: []live.Spec{{Key: key, Policy: hot, BreakerOpenUntil: &until}}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := live.Sum(tc.loads)[hot].Hot
			if len(got) != 1 || got[0].Spec != key {
				t.Fatalf("hot specs %+v, want one entry for %s", got, key)
			}
			if got[0].Stage != tc.want {
				t.Errorf("stage %q, want %q", got[0].Stage, tc.want)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)
	now := t0.Add(10 * time.Second)
	reported := func(w int32, hot ...v1alpha1.HotSpec) v1alpha1.LaunchPolicyStatus {
		return v1alpha1.LaunchPolicyStatus{Waiters: w, HotSpecs: hot, CountersReportedAt: &metav1.Time{Time: t0}}
	}
	accepted := v1alpha1.PolicyConditions{ObservedGeneration: 3, Conditions: []metav1.Condition{{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue}}}
	spec := v1alpha1.HotSpec{Spec: "gh/org/repo/HEAD", Waiters: 9}
	building := v1alpha1.HotSpec{Spec: "gh/org/repo/HEAD", Waiters: 9, Stage: v1alpha1.BuildStageBuilding}
	releasing := v1alpha1.HotSpec{Spec: "gh/org/repo/HEAD", Waiters: 9, Stage: v1alpha1.BuildStageReleasing}
	tests := map[string]struct {
		cur         v1alpha1.LaunchPolicyStatus
		totals      live.Totals
		wantChanged bool
		want        v1alpha1.LaunchPolicyStatus
	}{
		"a policy never reported gets its first report, even of zero": {
			cur:         v1alpha1.LaunchPolicyStatus{PolicyConditions: accepted},
			wantChanged: true,
			want:        v1alpha1.LaunchPolicyStatus{PolicyConditions: accepted, CountersReportedAt: &metav1.Time{Time: now}},
		},
		"unchanged counters are not written again": {
			cur:    reported(9, spec),
			totals: live.Totals{Waiters: 9, Hot: []v1alpha1.HotSpec{spec}},
			want:   reported(9, spec),
		},
		"a storm shows its count and spec": {
			cur:         reported(0),
			totals:      live.Totals{Waiters: 9, Hot: []v1alpha1.HotSpec{spec}},
			wantChanged: true,
			want:        v1alpha1.LaunchPolicyStatus{Waiters: 9, HotSpecs: []v1alpha1.HotSpec{spec}, CountersReportedAt: &metav1.Time{Time: now}},
		},
		"the end of a build drops the counters to zero": {
			cur:         reported(9, spec),
			wantChanged: true,
			want:        v1alpha1.LaunchPolicyStatus{CountersReportedAt: &metav1.Time{Time: now}},
		},
		"a build that moves on to releasing is written, its count unchanged": {
			cur:         reported(9, building),
			totals:      live.Totals{Waiters: 9, Hot: []v1alpha1.HotSpec{releasing}},
			wantChanged: true,
			want:        v1alpha1.LaunchPolicyStatus{Waiters: 9, HotSpecs: []v1alpha1.HotSpec{releasing}, CountersReportedAt: &metav1.Time{Time: now}},
		},
		"the Accepted condition is kept": {
			cur:         v1alpha1.LaunchPolicyStatus{PolicyConditions: accepted, CountersReportedAt: &metav1.Time{Time: t0}},
			totals:      live.Totals{Waiters: 1},
			wantChanged: true,
			want:        v1alpha1.LaunchPolicyStatus{PolicyConditions: accepted, Waiters: 1, CountersReportedAt: &metav1.Time{Time: now}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.cur.DeepCopy()
			got, changed := live.Desired(tc.cur, tc.totals, now.Add(300*time.Millisecond))
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Desired (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, &tc.cur); d != "" {
				t.Errorf("Desired modified its input:\n%s", d)
			}
		})
	}
}
