// Package webhook wires binderguard's pod admission into a
// controller-runtime manager: the TLS webhook server with the mutating and
// validating pod handlers, its readiness checks (returned for the caller
// to serve), and the controller that acts on pods already running when a
// RepoBan appears; in self-signed certificate mode, also the rotator that
// keeps the serving certificate (webhook/certs), with the server started
// only once it is in place.
//
// The decisions live in webhook/evaluate (pure), the handlers in
// webhook/admission, serving in webhook/https, existing pods in
// webhook/existing. This package only connects them; it must never hold
// policy logic of its own.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/spec"
	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/webhook/certs"
	"github.com/binderguard/binderguard/webhook/evaluate"
	"github.com/binderguard/binderguard/webhook/existing"
	"github.com/binderguard/binderguard/webhook/https"
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
	// CertMode says who writes CertDir and the webhook configurations'
	// caBundle: certs.SelfSigned (binderguard, which then needs CertDir and
	// Namespace) or certs.External (cert-manager or the operator).
	CertMode certs.Mode
	// Namespace of the install: where the certificate Secret and the
	// webhook Service are, and the suffix of the webhook configurations'
	// name (self-signed mode only).
	Namespace string
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
	// OnRefused is passed to admission.Config: called per policy that
	// made the validating webhook deny a pod.
	OnRefused func(policy string)
	// Parser names the site's extra provider prefixes for BINDER_REQUEST
	// values; nil knows BinderHub's built-in providers only.
	Parser *spec.Parser
}

// PolicySource reads the latest snapshot from store for each review.
func PolicySource(store *snapshot.Store, parser *spec.Parser) admission.PolicySource {
	return func(now time.Time) (evaluate.Policies, bool) {
		s := store.Load()
		if s == nil {
			return nil, false
		}
		return evaluate.FromSnapshot(s, parser, now), true
	}
}

// Setup adds the webhook server (both pod handlers) and, when enabled,
// the existing-pods controller to mgr, and returns the readiness checks the
// caller serves: "webhook" (the server answers TLS on its port) and, in
// self-signed mode, "webhook-certs" (the certificate is in place). The
// manager's scheme must include v1alpha1 for the controller.
func Setup(mgr manager.Manager, cfg Config) (map[string]healthz.Checker, error) {
	if cfg.Store == nil {
		return nil, errors.New("webhook: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hooks, err := admission.New(admission.Config{
		Policies:   PolicySource(cfg.Store, cfg.Parser),
		Recorder:   mgr.GetEventRecorder("binderguard-webhook"),
		Registerer: cfg.Registerer,
		Logger:     cfg.Logger.With("component", "admission"),
		OnRefused:  cfg.OnRefused,
	})
	if err != nil {
		return nil, fmt.Errorf("building the admission handlers: %w", err)
	}
	srv, err := https.New(https.Config{Host: cfg.Host, Port: cfg.Port, CertDir: cfg.CertDir, Logger: cfg.Logger.With("component", "webhook-server")}, hooks)
	if err != nil {
		return nil, err
	}
	checks := map[string]healthz.Checker{}
	var run manager.Runnable = srv
	if cfg.CertMode == certs.SelfSigned {
		ready, err := certs.Add(mgr, certs.Config{Namespace: cfg.Namespace, CertDir: cfg.CertDir, Logger: cfg.Logger.With("component", "webhook-certs")})
		if err != nil {
			return nil, err
		}
		// controller-runtime's server reads the files when it starts: start
		// it once the rotator's certificate is mounted.
		run = startWhenReady{ready: ready, srv: srv, log: cfg.Logger}
		checks["webhook-certs"] = func(*http.Request) error {
			select {
			case <-ready:
				return nil
			default:
				return errors.New("serving certificate not yet written, mounted and injected into the webhook configurations")
			}
		}
	}
	if err := mgr.Add(run); err != nil {
		return nil, fmt.Errorf("adding the webhook server to the manager: %w", err)
	}
	// Ready once the server answers TLS on its port (it dials it).
	checks["webhook"] = srv.StartedChecker()
	if cfg.ExistingPods {
		if err := existing.Setup(mgr, cfg.PodNamespace, cfg.Parser, cfg.Logger.With("component", "existing-pods")); err != nil {
			return nil, err
		}
	}
	return checks, nil
}

// startWhenReady starts the webhook server once ready closes, on every
// replica.
type startWhenReady struct {
	ready <-chan struct{}
	srv   crwebhook.Server
	log   *slog.Logger
}

func (s startWhenReady) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-s.ready:
	}
	s.log.Info("serving certificate in place, starting the webhook server")
	return s.srv.Start(ctx)
}

func (startWhenReady) NeedLeaderElection() bool { return false }
