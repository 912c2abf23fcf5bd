// Package https builds the HTTPS server binderguard's admission webhooks
// are served from: controller-runtime's webhook.Server with TLS 1.2 as the
// floor (1.3 negotiated whenever the API server offers it), HTTP/2 off,
// serving certificates reloaded from disk when they are rotated, and the
// two pod handlers registered on their paths.
//
// It must never decide anything about a pod: that is webhook/evaluate,
// reached through webhook/admission.
package https

import (
	"crypto/tls"
	"errors"
	"log/slog"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/binderguard/binderguard/webhook/admission"
)

// Config configures the server.
type Config struct {
	// Host and Port to listen on; Port 0 means controller-runtime's 9443.
	Host string
	Port int
	// CertDir holds tls.crt and tls.key (a mounted Secret); the files are
	// watched and reloaded when cert-manager or an operator rotates them.
	CertDir string
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
}

// TLSOptions returns the TLS settings every binderguard HTTPS listener
// uses. HTTP/2 is off: an API server speaks HTTP/1.1 to webhooks, and
// HTTP/2 on a TLS listener has had stream-reset and rapid-reset denial of
// service bugs that a webhook in every pod's admission path cannot afford.
func TLSOptions() []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.NextProtos = []string{"http/1.1"}
		// Only forward-secret AEAD suites for TLS 1.2 peers; TLS 1.3
		// suites are not configurable and are all fine.
		c.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	}}
}

// New returns a webhook server with the two pod handlers registered on
// admission.MutatePath and admission.ValidatePath. Start it with the
// manager (mgr.Add) or directly (srv.Start(ctx)); its StartedChecker is
// the readiness check.
func New(o Config, hooks *admission.Hooks) (webhook.Server, error) {
	if hooks == nil || hooks.Mutating == nil || hooks.Validating == nil {
		return nil, errors.New("webhook server: both handlers are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	srv := webhook.NewServer(webhook.Options{
		Host:    o.Host,
		Port:    o.Port,
		CertDir: o.CertDir,
		TLSOpts: TLSOptions(),
	})
	log := logr.FromSlogHandler(o.Logger.Handler())
	for path, h := range map[string]cradmission.Handler{
		admission.MutatePath:   hooks.Mutating,
		admission.ValidatePath: hooks.Validating,
	} {
		srv.Register(path, &cradmission.Webhook{
			Handler: h,
			LogConstructor: func(_ logr.Logger, req *cradmission.Request) logr.Logger {
				l := log.WithValues("webhook", path)
				if req != nil {
					l = l.WithValues("namespace", req.Namespace, "name", req.Name, "uid", req.UID)
				}
				return l
			},
		})
	}
	return srv, nil
}
