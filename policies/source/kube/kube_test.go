package kube_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/kube"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/test/testenv"
)

// waitTimeout bounds how long a test waits for the snapshot to follow an
// API change; it is a deadlock guard, not a latency assertion.
const waitTimeout = 30 * time.Second

// fixture runs a Source against a real API server, in one namespace.
type fixture struct {
	t      *testing.T
	env    *testenv.Env
	c      client.Client
	ns     string
	store  *snapshot.Store
	builds chan kube.Rebuild
}

// start runs a source; hookErr, when set, is what the hook returns.
func start(t *testing.T, hookErr func() error) *fixture {
	env := testenv.Start(t)
	ns := env.Namespace(t)
	f := &fixture{t: t, env: env, c: env.Client, ns: ns, builds: make(chan kube.Rebuild, 64)}
	f.store = env.StartPolicySource(t, ns, func(_ context.Context, b kube.Rebuild) error {
		select {
		case f.builds <- b:
		default: // the test reads only the latest builds it cares about
		}
		if hookErr != nil {
			return hookErr()
		}
		return nil
	}).Store
	return f
}

// waitFor waits until the store holds a snapshot satisfying ok.
func (f *fixture) waitFor(what string, ok func(*snapshot.Snapshot) bool) *snapshot.Snapshot {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ch := f.store.Subscribe(ctx)
	for snap := range ch {
		if ok(snap) {
			return snap
		}
	}
	f.t.Fatalf("snapshot never reached: %s (latest version %s)", what, f.store.Load().Version)
	return nil
}

func banned(snap *snapshot.Snapshot, s string) (string, bool) {
	sp, err := spec.Parse(s)
	if err != nil {
		panic(err)
	}
	hit, ok := snap.Ban(sp, time.Now())
	return hit.Policy, ok
}

func mustDo(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestSourceFollowsCreateUpdateDeleteAndExpiry(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	if nb, nl := f.store.Load().Counts(); nb != 0 || nl != 0 {
		t.Fatalf("first snapshot of an empty namespace has %d bans and %d launch policies", nb, nl)
	}
	banRef := "RepoBan/" + f.ns + "/demo"

	// Create: a ban on one repository covers its other spellings.
	ban := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "demo"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/jupyterlab/jupyterlab-demo"}},
	}
	mustDo(t, "create RepoBan", f.c.Create(ctx, ban))
	f.waitFor("ban on jupyterlab-demo in force", func(s *snapshot.Snapshot) bool {
		p, ok := banned(s, "git/https%3A%2F%2Fgithub.com%2FJupyterLab%2Fjupyterlab-demo.git/HEAD")
		return ok && p == banRef
	})

	// Update: the ban moves to another repository.
	ban.Spec.Repos = []v1alpha1.RepoRef{"gh/org/other"}
	mustDo(t, "update RepoBan", f.c.Update(ctx, ban))
	f.waitFor("ban moved to org/other", func(s *snapshot.Snapshot) bool {
		_, old := banned(s, "gh/jupyterlab/jupyterlab-demo/HEAD")
		_, now := banned(s, "gh/org/other/main")
		return !old && now
	})

	// A LaunchPolicy is picked up and selected for its repository.
	lp := &v1alpha1.LaunchPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "hot"},
		Spec: v1alpha1.LaunchPolicySpec{
			Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{"gh/org/hot"}},
			Priority: 10,
		},
	}
	mustDo(t, "create LaunchPolicy", f.c.Create(ctx, lp))
	f.waitFor("launch policy selected for org/hot", func(s *snapshot.Snapshot) bool {
		sp, _ := spec.Parse("gh/org/hot/HEAD")
		return s.Launch(sp).Policy == "LaunchPolicy/"+f.ns+"/hot"
	})

	// Delete: the ban stops applying.
	mustDo(t, "delete RepoBan", f.c.Delete(ctx, ban))
	f.waitFor("ban deleted", func(s *snapshot.Snapshot) bool {
		_, ok := banned(s, "gh/org/other/main")
		nb, _ := s.Counts()
		return !ok && nb == 0
	})

	// Expiry: with no API change and no rebuild, the ban stops applying
	// at its expiry, judged by the snapshot at query time (the xDS edge
	// re-applies the snapshot then: xds/controller.WatchPolicies).
	expiring := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "expiring"},
		Spec: v1alpha1.RepoBanSpec{
			Repos:   []v1alpha1.RepoRef{"gh/org/brief"},
			Expires: &metav1.Time{Time: time.Now().Add(3 * time.Second).Truncate(time.Second)},
		},
	}
	mustDo(t, "create expiring RepoBan", f.c.Create(ctx, expiring))
	snap := f.waitFor("expiring ban in force", func(s *snapshot.Snapshot) bool {
		_, ok := banned(s, "gh/org/brief/HEAD")
		return ok
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		_, ok := banned(snap, "gh/org/brief/HEAD")
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired ban still applies")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().Before(expiring.Spec.Expires.Time) {
		t.Errorf("ban stopped applying before its expiry %s", expiring.Spec.Expires.Time)
	}
	if next := snap.NextExpiry(time.Now().Add(-time.Hour)); !next.Equal(expiring.Spec.Expires.Time) {
		t.Errorf("NextExpiry = %s, want the ban's expiry %s", next, expiring.Spec.Expires.Time)
	}
}

func TestSourceReportsObjectsTheSnapshotLeavesOutAndKeepsToItsNamespace(t *testing.T) {
	f := start(t, nil)
	ctx := context.Background()
	// The API server accepts this shape, but "zenodo/notadoi" names no
	// repository: binderguard must say so rather than drop it silently.
	bad := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bad"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"zenodo/notadoi"}},
	}
	good := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "good"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/org/repo"}},
	}
	// The source watches only its namespace.
	elsewhere := &v1alpha1.RepoBan{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.env.Namespace(t), Name: "elsewhere"},
		Spec:       v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{"gh/org/elsewhere"}},
	}
	mustDo(t, "create RepoBan in another namespace", f.c.Create(ctx, elsewhere))
	mustDo(t, "create bad RepoBan", f.c.Create(ctx, bad))
	mustDo(t, "create good RepoBan", f.c.Create(ctx, good))

	deadline := time.After(waitTimeout)
	for {
		select {
		case b := <-f.builds:
			byName := map[string]snapshot.ObjectStatus{}
			for _, o := range b.Objects {
				if o.Namespace != f.ns {
					t.Fatalf("source scoped to %s saw %s/%s", f.ns, o.Namespace, o.Name)
				}
				byName[o.Name] = o
			}
			if len(b.Objects) != 2 {
				continue
			}
			if byName["bad"].Err == nil {
				t.Fatalf("RepoBan with repo zenodo/notadoi was accepted; want an error")
			}
			if byName["good"].Err != nil {
				t.Fatalf("valid RepoBan refused: %v", byName["good"].Err)
			}
			if nb, _ := b.Snapshot.Counts(); nb != 1 {
				t.Fatalf("snapshot has %d bans, want only the valid one", nb)
			}
			if len(b.RepoBans) != 2 {
				t.Fatalf("build lists %d RepoBans, want both objects", len(b.RepoBans))
			}
			return
		case <-deadline:
			t.Fatal("no build reported both RepoBans")
		}
	}
}

func TestSourceCallsAFailedHookAgainWithoutAnyChange(t *testing.T) {
	var calls atomic.Int32
	f := start(t, func() error {
		if calls.Add(1) == 1 {
			return errors.New("status write refused")
		}
		return nil
	})
	select {
	case <-f.builds: // the failed first call
	case <-time.After(waitTimeout):
		t.Fatal("hook never called")
	}
	select {
	case <-f.builds:
		if n := calls.Load(); n != 2 {
			t.Fatalf("hook called %d times, want 2", n)
		}
	case <-time.After(waitTimeout):
		t.Fatal("hook not called again after failing")
	}
}
