// Package webhook wires binderguard's pod admission into a
// controller-runtime manager: the TLS webhook server with the mutating and
// validating pod handlers, its readiness check, and the controller that
// acts on pods already running when a RepoBan appears.
//
// The decisions live in webhook/evaluate (pure), the handlers in
// webhook/admission, serving in webhook/server, existing pods in
// webhook/existing. This package only connects them; it must never hold
// policy logic of its own.
package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/webhook/evaluate"
	"github.com/binderguard/binderguard/webhook/existing"
	"github.com/binderguard/binderguard/webhook/server"
)

// Config is what `binderguard serve` gives the webhook.
type Config struct {
	// Store is the policy snapshot store the kube source fills (required).
	// Handlers only ever read Store.Load(): no API calls per review.
	Store *snapshot.Store
	// Host, Port and CertDir of the HTTPS listener (defaults: all
	// interfaces, 9443, controller-runtime's temp dir). CertDir holds
	// tls.crt and tls.key and is watched for rotation.
	Host    string
	Port    int
	CertDir string
	// Registerer receives binderguard_webhook_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
	// ExistingPods enables the onExisting controller (needs RBAC to list
	// and delete pods and patch repobans/status; runs on the leader only).
	ExistingPods bool
	// PodNamespace limits the onExisting scan to one namespace ("" = all
	// namespaces); set it when binderguard runs with a namespaced Role.
	PodNamespace string
}

// PolicySource reads the latest snapshot from store for each review.
func PolicySource(store *snapshot.Store) admission.PolicySource {
	return func(now time.Time) (evaluate.Policies, bool) {
		s := store.Load()
		if s == nil {
			return nil, false
		}
		return evaluate.FromSnapshot(s, now), true
	}
}

// Setup adds the webhook server (both pod handlers), a readiness check
// named "webhook" and, when enabled, the existing-pods controller to mgr.
// The manager's scheme must include v1alpha1 for the controller.
func Setup(mgr manager.Manager, cfg Config) error {
	if cfg.Store == nil {
		return errors.New("webhook: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hooks, err := admission.New(admission.Config{
		Policies:   PolicySource(cfg.Store),
		Recorder:   mgr.GetEventRecorder("binderguard-webhook"),
		Registerer: cfg.Registerer,
		Logger:     cfg.Logger.With("component", "admission"),
	})
	if err != nil {
		return fmt.Errorf("building the admission handlers: %w", err)
	}
	srv, err := server.New(server.Options{Host: cfg.Host, Port: cfg.Port, CertDir: cfg.CertDir, Logger: cfg.Logger.With("component", "webhook-server")}, hooks)
	if err != nil {
		return err
	}
	if err := mgr.Add(srv); err != nil {
		return fmt.Errorf("adding the webhook server to the manager: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return fmt.Errorf("adding the webhook readiness check: %w", err)
	}
	if cfg.ExistingPods {
		if err := existing.Setup(mgr, cfg.PodNamespace, cfg.Logger.With("component", "existing-pods")); err != nil {
			return err
		}
	}
	return nil
}
