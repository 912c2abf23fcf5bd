package kube_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// An operator adds one entry to a ban in force. The API server accepts
// "zenodo/notadoi" (the CRD checks only the provider prefix) and
// binderguard cannot parse it. Leaving the whole object out would unban
// every repository the ban already held, at the edge and at the webhook;
// the file source keeps a file's last valid policies in force, and in a
// cluster the ban must not fail open either: the bad entry is ignored and
// reported, the rest stays in force.
func TestAnEditBinderguardRefusesDoesNotLiftABanInForce(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	rb := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "crypto"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}},
	}
	mustDo(t, "create RepoBan", f.c.Create(ctx, rb))
	f.waitFor("gh/bad/miner banned", func(s *snapshot.Snapshot) bool {
		_, ok := banned(s, "gh/bad/miner/HEAD")
		return ok
	})

	mustDo(t, "get RepoBan", f.c.Get(ctx, client.ObjectKeyFromObject(rb), rb))
	rb.Spec.Repos = append(rb.Spec.Repos, "zenodo/notadoi")
	mustDo(t, "add an entry the API server accepts", f.c.Update(ctx, rb))

	deadline := time.After(waitTimeout)
	for {
		select {
		case b := <-f.builds:
			var st *snapshot.ObjectStatus
			for i := range b.Objects {
				if b.Objects[i].Name == "crypto" && b.Objects[i].Generation == rb.Generation {
					st = &b.Objects[i]
				}
			}
			if st == nil {
				continue
			}
			if st.Err == nil {
				t.Fatal("zenodo/notadoi was accepted; this test needs an entry binderguard refuses")
			}
			if _, ok := banned(b.Snapshot, "gh/bad/miner/HEAD"); !ok {
				t.Fatalf("after an edit binderguard refused (%v), gh/bad/miner is no longer banned: the ban failed open", st.Err)
			}
			return
		case <-deadline:
			t.Fatal("no build reported the edited RepoBan")
		}
	}
}
