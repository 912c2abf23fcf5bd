package status_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/status"
)

func TestDesired(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	accepted := func(gen int64, at time.Time) metav1.Condition {
		return metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted",
			Message: "accepted into the policy snapshot", ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(at)}
	}
	badRepo := &snapshot.ObjectError{Kind: "RepoBan", Namespace: "ns", Name: "b", Generation: 2,
		Errs: field.ErrorList{field.Invalid(field.NewPath("spec", "repos").Index(0), "gh/onlyowner", "names no repository")}}
	other := metav1.Condition{Type: "Reported", Status: metav1.ConditionTrue, Reason: "Webhook", LastTransitionTime: metav1.NewTime(t0)}

	tests := map[string]struct {
		cur         v1alpha1.PolicyConditions
		st          snapshot.ObjectStatus
		wantChanged bool
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
		wantSince   time.Time
		wantOthers  int
	}{
		"a new valid object becomes Accepted": {
			st:          snapshot.ObjectStatus{Generation: 1},
			wantChanged: true, wantStatus: metav1.ConditionTrue, wantReason: "Accepted", wantSince: t1,
		},
		"an object already accepted at this generation needs no write": {
			cur:         v1alpha1.PolicyConditions{Conditions: []metav1.Condition{accepted(1, t0)}, ObservedGeneration: 1},
			st:          snapshot.ObjectStatus{Generation: 1},
			wantChanged: false, wantStatus: metav1.ConditionTrue, wantReason: "Accepted", wantSince: t0,
		},
		"a new accepted generation moves observedGeneration but keeps the transition time": {
			cur:         v1alpha1.PolicyConditions{Conditions: []metav1.Condition{accepted(1, t0)}, ObservedGeneration: 1},
			st:          snapshot.ObjectStatus{Generation: 2},
			wantChanged: true, wantStatus: metav1.ConditionTrue, wantReason: "Accepted", wantSince: t0,
		},
		"an object binderguard cannot use becomes Accepted=False with the field and reason": {
			cur:         v1alpha1.PolicyConditions{Conditions: []metav1.Condition{accepted(1, t0)}, ObservedGeneration: 1},
			st:          snapshot.ObjectStatus{Generation: 2, Err: badRepo},
			wantChanged: true, wantStatus: metav1.ConditionFalse, wantReason: "Invalid",
			wantMessage: `spec.repos[0]: Invalid value: "gh/onlyowner": names no repository`, wantSince: t1,
		},
		"a ban in force without entries binderguard cannot use says so": {
			cur:         v1alpha1.PolicyConditions{Conditions: []metav1.Condition{accepted(1, t0)}, ObservedGeneration: 1},
			st:          snapshot.ObjectStatus{Generation: 2, Err: badRepo, Partial: true},
			wantChanged: true, wantStatus: metav1.ConditionFalse, wantReason: "EntriesIgnored",
			wantMessage: `spec.repos[0]: Invalid value: "gh/onlyowner": names no repository (these entries are ignored; the rest of the ban is in force)`, wantSince: t1,
		},
		"another writer's condition is kept": {
			cur:         v1alpha1.PolicyConditions{Conditions: []metav1.Condition{other}},
			st:          snapshot.ObjectStatus{Generation: 1},
			wantChanged: true, wantStatus: metav1.ConditionTrue, wantReason: "Accepted", wantSince: t1, wantOthers: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.cur.DeepCopy()
			got, changed := status.Desired(tc.cur, tc.st, t1)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if got.ObservedGeneration != tc.st.Generation {
				t.Errorf("observedGeneration = %d, want %d", got.ObservedGeneration, tc.st.Generation)
			}
			if len(got.Conditions) != 1+tc.wantOthers {
				t.Fatalf("got %d conditions, want %d: %+v", len(got.Conditions), 1+tc.wantOthers, got.Conditions)
			}
			var c *metav1.Condition
			for i := range got.Conditions {
				if got.Conditions[i].Type == v1alpha1.ConditionAccepted {
					c = &got.Conditions[i]
				}
			}
			if c == nil {
				t.Fatal("no Accepted condition")
			}
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != tc.st.Generation {
				t.Errorf("Accepted = %s/%s gen %d, want %s/%s gen %d", c.Status, c.Reason, c.ObservedGeneration, tc.wantStatus, tc.wantReason, tc.st.Generation)
			}
			if tc.wantMessage != "" && !strings.Contains(c.Message, tc.wantMessage) {
				t.Errorf("message %q does not contain %q", c.Message, tc.wantMessage)
			}
			if !c.LastTransitionTime.Time.Equal(tc.wantSince) {
				t.Errorf("lastTransitionTime = %s, want %s", c.LastTransitionTime.Time, tc.wantSince)
			}
			if !equality.Semantic.DeepEqual(before, &tc.cur) {
				t.Error("Desired modified its input")
			}
		})
	}
}

func TestDesiredBoundsALongMessage(t *testing.T) {
	var errs field.ErrorList
	for range 500 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "repos").Index(0), strings.Repeat("x", 40), "names no repository"))
	}
	st := snapshot.ObjectStatus{Generation: 1, Err: &snapshot.ObjectError{Errs: errs}}
	got, _ := status.Desired(v1alpha1.PolicyConditions{}, st, time.Now())
	if n := len(got.Conditions[0].Message); n > 4096 {
		t.Errorf("message is %d bytes, want at most 4096", n)
	}
}
