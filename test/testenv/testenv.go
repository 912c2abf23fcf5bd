package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
)

// modulePath identifies the repository root when searching upwards for it.
const modulePath = "module github.com/binderguard/binderguard"

// Start and stop timeouts are generous because up to eight test processes
// share two cores here; a cold kube-apiserver then takes well over the
// envtest default of 20 s.
const (
	startTimeout = 3 * time.Minute
	stopTimeout  = time.Minute
)

// Env is a running API server with binderguard's CRDs installed.
type Env struct {
	// Config reaches the API server as an admin.
	Config *rest.Config
	// Client is a controller-runtime client using Scheme.
	Client client.Client
	// Scheme holds the client-go built-in types and binderguard's types.
	Scheme *runtime.Scheme
	// Webhook is the installed webhook configuration, with
	// LocalServingHost, LocalServingPort and LocalServingCertDir filled in:
	// serve the webhook there and the API server calls it.
	Webhook *envtest.WebhookInstallOptions
	// Environment is the underlying envtest environment.
	Environment *envtest.Environment
}

// Option changes how the environment starts.
type Option func(*options)

type options struct {
	webhook  envtest.WebhookInstallOptions
	crdPaths []string
	schemes  []func(*runtime.Scheme) error
}

// WithWebhooks installs these webhook configurations (passed through to
// envtest, which makes a CA and serving certificate and points the
// configurations' service references at the local serving address).
func WithWebhooks(o envtest.WebhookInstallOptions) Option {
	return func(opts *options) { opts.webhook = o }
}

// WithCRDPaths installs CRDs from these files or directories in addition to
// manifests/crds.
func WithCRDPaths(paths ...string) Option {
	return func(opts *options) { opts.crdPaths = append(opts.crdPaths, paths...) }
}

// WithScheme adds more types to the client's scheme.
func WithScheme(add func(*runtime.Scheme) error) Option {
	return func(opts *options) { opts.schemes = append(opts.schemes, add) }
}

// Start starts an API server for the test and stops it when the test
// ends. It fails the test (never skips) when the binaries are missing.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	env, stop, err := New(opts...)
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	return env
}

// New starts an API server and returns it with the function that stops
// it, for callers without a testing.TB (TestMain).
func New(opts ...Option) (*Env, func() error, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, nil, err
	}

	scheme := runtime.NewScheme()
	adders := append([]func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme}, o.schemes...)
	for _, add := range adders {
		if err := add(scheme); err != nil {
			return nil, nil, fmt.Errorf("build test scheme: %w", err)
		}
	}

	// controller-runtime logs through a process-wide logger and prints a
	// stack dump when none is set; send its warnings and errors to stderr.
	// A test that wants more can call log.SetLogger after Start.
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	te := &envtest.Environment{
		Scheme:                   scheme,
		CRDDirectoryPaths:        append([]string{filepath.Join(root, "manifests", "crds")}, o.crdPaths...),
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		WebhookInstallOptions:    o.webhook,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	cfg, err := te.Start()
	if err != nil {
		// Start can leave processes behind when a later step fails.
		return nil, nil, errors.Join(fmt.Errorf("start kube-apiserver and etcd from %s: %w", assets, err), te.Stop())
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("make client: %w", err), te.Stop())
	}
	env := &Env{
		Config:      cfg,
		Client:      c,
		Scheme:      scheme,
		Webhook:     &te.WebhookInstallOptions,
		Environment: te,
	}
	stop := func() error {
		if err := te.Stop(); err != nil {
			return fmt.Errorf("stop kube-apiserver and etcd: %w", err)
		}
		return nil
	}
	return env, stop, nil
}

// Namespace creates a namespace with a unique name for one test and
// returns its name. envtest runs no namespace controller, so it is not
// removed; tests keep apart by using their own.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bg-test-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create test namespace: %v", err)
	}
	return ns.Name
}

// RepoRoot finds the repository root by walking up from the working
// directory to binderguard's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/binderguard/binderguard above the working directory")
		}
		dir = parent
	}
}

// assetsDir returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set, else <root>/.tools/bin.
func assetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, ".tools", "bin")
	}
	var missing []string
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if env := os.Getenv("TEST_ASSET_" + strings.ToUpper(strings.ReplaceAll(bin, "-", "_"))); env != "" {
			continue // envtest uses the explicit path instead
		}
		fi, err := os.Stat(filepath.Join(dir, bin))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(dir, bin))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("envtest binaries missing (%s): run make tools", strings.Join(missing, ", "))
	}
	return dir, nil
}

// Eventually calls f until it returns nil, and fails the test with f's last
// error after d: the API server and informers settle asynchronously.
func Eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
