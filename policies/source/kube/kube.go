package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/policies/snapshot"
)

// Rebuild is the outcome of one rebuild, handed to Config.OnRebuild.
type Rebuild struct {
	// Snapshot is what was published (or already held, when nothing that
	// matters changed).
	Snapshot *snapshot.Snapshot
	// RepoBans and LaunchPolicies are every object seen, sorted by
	// namespace/name. They are the source's own
	// copies: the hook may read them but must not keep them past the call.
	RepoBans       []v1alpha1.RepoBan
	LaunchPolicies []v1alpha1.LaunchPolicy
	// Objects says for every object whether it was accepted.
	Objects []snapshot.ObjectStatus
}

// Config wires a Source.
type Config struct {
	// Cache supplies the informers. The caller starts it (a manager's
	// cache is started by the manager; see NewCache otherwise).
	Cache cache.Cache
	// Store receives every snapshot built.
	Store *snapshot.Store
	// OnRebuild, when set, is called after every rebuild on the source's
	// goroutine; a slow hook delays the next rebuild, not this one's
	// publication. When it returns an error the source rebuilds and calls
	// it again after a backoff, even if nothing changed.
	OnRebuild func(ctx context.Context, r Rebuild) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Source turns informer events into snapshots.
type Source struct {
	cfg   Config
	ready chan struct{}
}

// New checks cfg and returns a Source; nothing runs until Run.
func New(cfg Config) (*Source, error) {
	if cfg.Cache == nil || cfg.Store == nil {
		return nil, errors.New("kube policy source: Cache and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Source{cfg: cfg, ready: make(chan struct{})}, nil
}

// NewCache returns an informer cache for the policy kinds, watching only
// the given namespaces (every namespace when none are given). Start it
// with go c.Start(ctx).
func NewCache(cfg *rest.Config, namespaces ...string) (cache.Cache, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build policy cache scheme: %w", err)
		}
	}
	opts := cache.Options{Scheme: scheme}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("make policy informer cache: %w", err)
	}
	return c, nil
}

// Ready is closed once the first snapshot from a synced cache is in the
// store: before that the store holds whatever it was created with.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Run watches both kinds and rebuilds on every change until ctx ends. It returns nil when ctx ends, or an error when
// the informers cannot be set up or never sync.
func (s *Source) Run(ctx context.Context) error {
	dirty := latest.NewKick() // a rebuild due sees every change made before it
	for _, obj := range []client.Object{&v1alpha1.RepoBan{}, &v1alpha1.LaunchPolicy{}} {
		inf, err := s.cfg.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("get informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(handler(dirty.Poke))
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
	}
	if !s.cfg.Cache.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kube policy source: informer caches did not sync")
	}

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := time.Duration(0)
	for first := true; ; first = false {
		err := s.rebuild(ctx)
		if first {
			close(s.ready)
		}
		retry.Stop()
		if err != nil && ctx.Err() == nil {
			backoff = min(max(2*backoff, minRetry), maxRetry)
			s.cfg.Logger.Error("policy rebuild failed; retrying", "err", err, "in", backoff)
			retry.Reset(backoff)
		} else {
			backoff = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
		case <-retry.C:
		}
	}
}

// Retry bounds for a failed rebuild or hook (a status write the API server
// refused): soon enough that a brief API outage heals unnoticed, slow enough
// not to add load to an API server in trouble.
const (
	minRetry = time.Second
	maxRetry = time.Minute
)

// handler marks the source dirty on adds, deletes, and updates that change
// metadata.generation: status writes (ours, the webhook's, the gate's
// counters) and label edits do not change what a policy means.
func handler(mark func()) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { mark() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if !ok1 || !ok2 || o.GetGeneration() != n.GetGeneration() {
				mark()
			}
		},
		DeleteFunc: func(any) { mark() },
	}
}

// rebuild lists both kinds from the cache, publishes a snapshot of them
// and calls the hook. Expired bans are in the snapshot like any other:
// it judges expiry when asked (every query takes now).
func (s *Source) rebuild(ctx context.Context) error {
	var bans v1alpha1.RepoBanList
	if err := s.cfg.Cache.List(ctx, &bans); err != nil {
		return fmt.Errorf("list RepoBans from cache: %w", err)
	}
	var lps v1alpha1.LaunchPolicyList
	if err := s.cfg.Cache.List(ctx, &lps); err != nil {
		return fmt.Errorf("list LaunchPolicies from cache: %w", err)
	}
	slices.SortFunc(bans.Items, func(a, b v1alpha1.RepoBan) int { return compareKey(&a, &b) })
	slices.SortFunc(lps.Items, func(a, b v1alpha1.LaunchPolicy) int { return compareKey(&a, &b) })

	snap, errs := snapshot.New(bans.Items, lps.Items)
	if s.cfg.Store.Store(snap) {
		nb, nl := snap.Counts()
		s.cfg.Logger.Info("policy snapshot published", "version", snap.Version,
			"bans", nb, "launchPolicies", nl, "invalid", len(errs))
	}
	if s.cfg.OnRebuild != nil {
		if err := s.cfg.OnRebuild(ctx, Rebuild{Snapshot: snap, RepoBans: bans.Items, LaunchPolicies: lps.Items, Objects: snap.Status()}); err != nil {
			return fmt.Errorf("policy build hook: %w", err)
		}
	}
	return nil
}

func compareKey(a, b client.Object) int {
	return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
}
