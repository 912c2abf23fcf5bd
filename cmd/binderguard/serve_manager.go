package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/xds/peers"
)

// leaseName is the leader-election Lease in the pod's namespace. Only the
// leader writes policy status and acts on running pods of a new ban; every
// replica serves the gate, xDS and the webhooks.
const leaseName = "binderguard-leader"

// newManager is serve's controller-runtime manager: leader election, the
// policy kinds in its scheme, and no metrics or probe server of its own.
func newManager(rc *rest.Config, c serveConfig, log *slog.Logger) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	opts := manager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(log.With("component", "manager").Handler()),
		// binderguard serves metrics and health itself, on listeners it
		// binds (one registry; see metricsHandler).
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                c.leaderElect,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       c.leaseNamespace,
		LeaderElectionReleaseOnCancel: true, // runServe returns right after the manager stops
		GracefulShutdownTimeout:       new(10 * time.Second),
		// controller-runtime checks controller names process-wide; serve
		// builds one manager per process, so the check could only refuse
		// a second in-process run (go test -count=N).
		Controller: config.Controller{SkipNameValidation: new(true)},
	}
	if c.namespace != "" {
		// A namespaced Role can only list and watch its own namespace.
		opts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{c.namespace: {}}}
	}
	if c.gateService != "" {
		// Only the gate Service's slices, in the install's namespace.
		opts.Cache.ByObject = map[client.Object]cache.ByObject{&discoveryv1.EndpointSlice{}: {
			Namespaces: map[string]cache.Config{c.installNamespace: {}},
			Label:      labels.SelectorFromSet(peers.Selector(c.gateService)),
		}}
	}
	mgr, err := manager.New(rc, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	return mgr, nil
}

// everyReplica runs f on every replica, leader or not.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }
