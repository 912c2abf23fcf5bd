// Package certs keeps the admission webhook's serving certificate when no
// cert-manager does: `binderguard serve --webhook-cert-mode=self-signed`,
// the default install. It runs open-policy-agent/cert-controller's
// rotator (what Gatekeeper runs) on the manager: the rotator keeps a CA
// and a serving certificate for the webhook Service's DNS names in the
// Secret binderguard-webhook-tls, renews them before they expire, and
// writes the CA into the caBundle of the install's two webhook
// configurations (binderguard-<namespace>). The kubelet mounts the Secret
// at the webhook's certificate directory; Ready closes once the files are
// there and the CA is injected, and only then may the webhook server
// start.
//
// Every replica runs the rotator: the Secret is the one source of truth,
// and a replica that loses an update race reads the winner's certificate.
//
// It must never read or watch any Secret or webhook configuration but the
// install's own (the BinderHub namespace holds the hub's secrets), create
// or delete objects, or decide anything about a pod.
package certs

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Names shared with the manifests (manifests/webhook/): the Secret the
// rotator writes and the Deployment mounts, and the Service the API server
// calls the webhooks through.
const (
	SecretName  = "binderguard-webhook-tls"
	ServiceName = "binderguard-webhook"
)

// Mode says who keeps the webhook's serving certificate.
type Mode int

const (
	// External: someone else writes the Secret and the caBundle
	// (cert-manager, or an operator by hand); binderguard only serves it.
	// The zero value: a caller that says nothing gets no rotator.
	External Mode = iota
	// SelfSigned: binderguard generates, rotates and injects it (this
	// package).
	SelfSigned
)

func (m Mode) String() string {
	switch m {
	case External:
		return "external"
	case SelfSigned:
		return "self-signed"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a Mode from its String form.
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{SelfSigned, External} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("certificate mode %q: want self-signed or external", s)
}

// WebhookConfigurationName is the name of both webhook configurations of
// the install in namespace ns (cluster-scoped, so one per install).
func WebhookConfigurationName(ns string) string { return "binderguard-" + ns }

// DNSNames are the names the API server dials the webhook Service by.
func DNSNames(ns string) []string {
	svc := ServiceName + "." + ns + ".svc"
	return []string{svc, svc + ".cluster.local"}
}

// Config is what Add needs.
type Config struct {
	// Namespace of the install (required): the Secret's namespace, the
	// Service's, and the suffix of the webhook configurations' name.
	Namespace string
	// CertDir is where the Secret is mounted (required): tls.crt and
	// tls.key appear there a kubelet sync after the rotator writes them.
	CertDir string
	// Logger is the component logger; nil discards. (cert-controller
	// itself logs through controller-runtime's logger, named
	// cert-rotation.)
	Logger *slog.Logger
}

// Add adds the rotator to mgr. The returned channel closes once the
// certificate is in the Secret, mounted in CertDir, and its CA is in both
// webhook configurations; the rotator stops the manager with an error if
// that does not happen within about 17 minutes.
func Add(mgr manager.Manager, cfg Config) (<-chan struct{}, error) {
	if cfg.Namespace == "" || cfg.CertDir == "" {
		return nil, errors.New("webhook certificates: Config.Namespace and Config.CertDir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	whName := WebhookConfigurationName(cfg.Namespace)
	dns := DNSNames(cfg.Namespace)
	ready := make(chan struct{})
	cr := &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: cfg.Namespace, Name: SecretName},
		CertDir:        cfg.CertDir,
		CAName:         "binderguard-webhook-ca",
		CAOrganization: "binderguard",
		DNSName:        dns[0],
		ExtraDNSNames:  dns[1:],
		IsReady:        ready,
		Webhooks: []rotator.WebhookInfo{
			{Name: whName, Type: rotator.Validating},
			{Name: whName, Type: rotator.Mutating},
		},
		// Inject the CA only once this replica can serve a certificate it
		// signed, as Gatekeeper does.
		EnableReadinessCheck: true,
		// Every replica serves the webhook, so every replica keeps (and
		// waits for) the certificate.
		RequireLeaderElection: false,
		FieldOwner:            "binderguard",
		// controller-runtime refuses a second controller of the same name
		// in one process; one install per namespace makes this unique in
		// production, and lets tests run several installs.
		ControllerName: "webhook-certs-" + cfg.Namespace,
	}
	scoped := scopedManager{Manager: mgr, cfg: scopeToNames(mgr.GetConfig(), map[string]string{
		"/api/v1/namespaces/" + cfg.Namespace + "/secrets":                      SecretName,
		"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations": whName,
		"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations":   whName,
	})}
	if err := rotator.AddRotator(scoped, cr); err != nil {
		return nil, fmt.Errorf("adding the webhook certificate rotator (Secret %s/%s, webhook configurations %s): %w", cfg.Namespace, SecretName, whName, err)
	}
	cfg.Logger.Info("webhook certificates are self-signed", "secret", cfg.Namespace+"/"+SecretName,
		"webhook_configurations", whName, "dns_names", dns, "cert_dir", cfg.CertDir)
	return ready, nil
}

// scopedManager hands the rotator a rest.Config whose list and watch
// requests name the one object they are for. cert-controller builds its
// own informer cache from mgr.GetConfig() and offers no way to scope it:
// unscoped, it would list every Secret in the BinderHub namespace and
// every webhook configuration in the cluster, and need RBAC to do so. With
// the metadata.name field selector added, RBAC rules restricted by
// resourceNames allow those lists and watches, and nothing else is read.
type scopedManager struct {
	manager.Manager
	cfg *rest.Config
}

func (m scopedManager) GetConfig() *rest.Config { return m.cfg }

// scopeToNames returns a copy of cfg whose collection GETs (list, watch)
// on the given paths carry fieldSelector=metadata.name=<name>. A request
// that already has a field selector is left alone (the API server's RBAC
// check then refuses it, loudly, rather than this widening or mangling
// it).
func scopeToNames(cfg *rest.Config, names map[string]string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			name, ok := names[strings.TrimSuffix(req.URL.Path, "/")]
			if !ok || req.Method != http.MethodGet || req.URL.Query().Has("fieldSelector") {
				return rt.RoundTrip(req)
			}
			req = req.Clone(req.Context())
			q := req.URL.Query()
			q.Set("fieldSelector", "metadata.name="+name)
			req.URL.RawQuery = q.Encode()
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
