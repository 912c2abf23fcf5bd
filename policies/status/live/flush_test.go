package live_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/test/testenv"
)

// Two replicas' tallies add their own shares to one ban's status; a ban
// that is gone, and names that are not RepoBans, are dropped.
func TestFlushBansAddsEachReplicasShare(t *testing.T) {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	ban := &v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "miner"},
		Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/bad/miner"}}}
	if err := env.Client.Create(ctx, ban); err != nil {
		t.Fatal(err)
	}
	name := v1alpha1.KindRepoBan + "/" + ns + "/miner"
	log := slog.New(slog.DiscardHandler)
	var a, b live.Tally
	for range 3 {
		a.Blocked(name)
	}
	a.Refused(name)
	a.Blocked(v1alpha1.KindRepoBan + "/" + ns + "/gone")
	a.Blocked("LaunchPolicy/" + ns + "/x")
	b.Blocked(name)
	b.Blocked(name)
	if n, err := a.FlushBans(ctx, env.Client, env.Client, log, time.Now()); err != nil || n != 1 {
		t.Fatalf("first replica's flush: wrote %d, %v; want 1 ban", n, err)
	}
	if n, err := b.FlushBans(ctx, env.Client, env.Client, log, time.Now()); err != nil || n != 1 {
		t.Fatalf("second replica's flush: wrote %d, %v; want 1 ban", n, err)
	}
	if n, err := a.FlushBans(ctx, env.Client, env.Client, log, time.Now()); err != nil || n != 0 {
		t.Errorf("a flush with nothing new wrote %d, %v", n, err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ban), ban); err != nil {
		t.Fatal(err)
	}
	if st := ban.Status; st.BlockedLaunches != 5 || st.RefusedPods != 1 || st.CountersReportedAt == nil {
		t.Errorf("status %+v, want 5 blocked (3+2) and 1 refused", st)
	}
}
