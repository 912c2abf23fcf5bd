package testenv

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/kube"
)

// readyTimeout bounds the wait for a policy source's first snapshot; it is
// a deadlock guard, not a latency assertion.
const readyTimeout = 30 * time.Second

// PolicySource is a kube policy source running against an Env, with the
// informer cache it reads.
type PolicySource struct {
	*kube.Source
	// Store receives every snapshot the source builds.
	Store *snapshot.Store
}

// StartPolicySource runs the informers of namespace ns and a kube policy
// source over them, calling onRebuild (nil: none) after every rebuild, until
// the test ends; it returns once the first snapshot is in the store.
func (e *Env) StartPolicySource(t testing.TB, ns string, onRebuild func(context.Context, kube.Rebuild) error) *PolicySource {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	informers, err := kube.NewCache(e.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := informers.Start(ctx); err != nil {
			t.Errorf("informer cache: %v", err)
		}
	})
	p := &PolicySource{Store: snapshot.NewStore(nil)}
	if p.Source, err = kube.New(kube.Config{Cache: informers, Store: p.Store, OnRebuild: onRebuild}); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			t.Errorf("kube source: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case <-time.After(readyTimeout):
		t.Fatal("kube source never became ready")
	}
	return p
}
