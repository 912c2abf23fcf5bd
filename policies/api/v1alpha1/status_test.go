package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/test/testenv"
)

// The API server keeps a hot spec's stage when it is one of the three a
// build goes through, and refuses any other word.
func TestHotSpecStageIsABuildStage(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := env.Namespace(t)
	lp := launchPolicy(nil)
	lp.Namespace, lp.Name = ns, "hot"
	if err := env.Client.Create(ctx, lp); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []v1alpha1.BuildStage{v1alpha1.BuildStageStarting, v1alpha1.BuildStageBuilding, v1alpha1.BuildStageReleasing} {
		lp.Status.HotSpecs = []v1alpha1.HotSpec{{Spec: "gh/org/repo/HEAD", Waiters: 3, Stage: stage}}
		if err := env.Client.Status().Update(ctx, lp); err != nil {
			t.Fatalf("report stage %s: %v", stage, err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(lp), lp); err != nil {
			t.Fatal(err)
		}
		if got := lp.Status.HotSpecs; len(got) != 1 || got[0].Stage != stage {
			t.Errorf("read back %+v, want stage %s", got, stage)
		}
	}
	lp.Status.HotSpecs = []v1alpha1.HotSpec{{Spec: "gh/org/repo/HEAD", Waiters: 3, Stage: "Pushing"}}
	err := env.Client.Status().Update(ctx, lp)
	if err == nil || !strings.Contains(err.Error(), `"Starting", "Building", "Releasing"`) {
		t.Errorf("reporting stage Pushing: %v, want a refusal naming the three stages", err)
	}
}
