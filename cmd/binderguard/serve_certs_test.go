package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/binderguard/binderguard/test/testenv"
	"github.com/binderguard/binderguard/webhook/certs"
)

// TestServeSelfSignedCertificates installs the default kustomization (no
// cert-manager) into a real kube-apiserver and runs serve's in-cluster
// wiring in its default certificate mode, authenticated as the
// binderguard ServiceAccount with exactly the RBAC the kustomization
// grants. The test plays the kubelet: it copies the Secret into the
// directory serve reads, as the Secret volume would. It checks that serve
// writes a certificate for the webhook Service's names into the Secret,
// injects its CA into both webhook configurations, turns ready only after
// that, and serves TLS that a client trusting only that caBundle accepts.
func TestServeSelfSignedCertificates(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctrllog.SetLogger(logr.FromSlogHandler(newLogger(testOutput(t), slog.LevelInfo).Handler()))
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A namespace of its own per run: the rotator's controller name (which
	// controller-runtime keeps process-wide) follows it, so go test -count=N
	// works.
	suffix := make([]byte, 3)
	rand.Read(suffix)
	ns := fmt.Sprintf("bg-certs-%x", suffix)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	deploy := filepath.Join(root, "manifests", "deploy")
	rendered := renderManifests(t, movedKustomization(t, root, kustomizationNamespace(t, deploy), ns, false))
	for key, obj := range rendered {
		if err := env.Client.Create(ctx, obj.(client.Object).DeepCopyObject().(client.Object)); err != nil {
			t.Fatalf("applying %s: %v", key, err)
		}
	}
	whName := certs.WebhookConfigurationName(ns)
	caBundles := func() (map[string][]byte, error) {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		var vwc admissionregistrationv1.ValidatingWebhookConfiguration
		err := errors.Join(env.Client.Get(ctx, client.ObjectKey{Name: whName}, &mwc), env.Client.Get(ctx, client.ObjectKey{Name: whName}, &vwc))
		got := map[string][]byte{}
		for _, w := range mwc.Webhooks {
			got["mutating "+w.Name] = w.ClientConfig.CABundle
		}
		for _, w := range vwc.Webhooks {
			got["validating "+w.Name] = w.ClientConfig.CABundle
		}
		if err == nil && len(got) != 2 {
			err = fmt.Errorf("%d webhooks, want 2", len(got))
		}
		return got, err
	}

	// serve as the Deployment runs it, as its ServiceAccount.
	sa, err := env.Environment.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + ns + ":binderguard",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir() // the Secret volume
	webhookAddr := freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(webhookAddr)
	c, err := parseServe([]string{
		"--upstream", "http://127.0.0.1:1",
		"--gate-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0",
		"--webhook-port", webhookPort, "--cert-dir", certDir,
	}, io.Discard, func(k string) string { return map[string]string{"POD_NAMESPACE": ns}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.certMode != certs.SelfSigned {
		t.Fatalf("serve's default certificate mode is %s, want self-signed (the default install has no cert-manager)", c.certMode)
	}
	c.webhookHost = "127.0.0.1"
	s, err := newInCluster(sa.Config(), c, newLogger(testOutput(t), slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	startServe(t, s)
	readyz := func() (int, string, error) {
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+s.healthLis.Addr().String()+"/readyz?verbose", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	// (1) The certificate lands in the Secret.
	var secret corev1.Secret
	testenv.Eventually(t, 60*time.Second, "serve writes the certificate into Secret "+certs.SecretName, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: certs.SecretName}, &secret); err != nil {
			return err
		}
		for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
			if len(secret.Data[k]) == 0 {
				return fmt.Errorf("no %s yet", k)
			}
		}
		return nil
	})
	caPool := x509.NewCertPool()
	if !caPool.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatalf("ca.crt in the Secret is no PEM certificate:\n%s", secret.Data["ca.crt"])
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatalf("tls.crt in the Secret is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range certs.DNSNames(ns) {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: caPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the Secret's certificate (DNS names %v) does not serve %s under its CA: %v", leaf.DNSNames, name, err)
		}
	}

	// (2) Not ready while the certificate is not mounted; and this replica
	// does not inject a CA it cannot serve yet.
	time.Sleep(2 * time.Second)
	if code, body, err := readyz(); err != nil || code == http.StatusOK || !strings.Contains(body, "webhook-certs") {
		t.Errorf("/readyz before the certificate is mounted: %d %v\n%s\nwant not ready, naming webhook-certs", code, err, body)
	}
	if got, err := caBundles(); err != nil {
		t.Fatal(err)
	} else {
		for which, ca := range got {
			if len(ca) != 0 {
				t.Errorf("%s has a caBundle before any replica serves the certificate", which)
			}
		}
	}

	// (3) The kubelet mounts the Secret.
	for k, v := range secret.Data {
		if err := os.WriteFile(filepath.Join(certDir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// (4) Ready, and by then both webhook configurations carry the CA.
	testenv.Eventually(t, 90*time.Second, "/readyz answers 200 once the certificate is mounted", func() error {
		code, body, err := readyz()
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d:\n%s", code, body)
		}
		return err
	})
	got, err := caBundles()
	if err != nil {
		t.Fatal(err)
	}
	for which, ca := range got {
		if !bytes.Equal(ca, secret.Data["ca.crt"]) {
			t.Errorf("%s caBundle is not the Secret's CA:\n%s", which, ca)
		}
	}

	// (5) A client that trusts only the validating webhook's caBundle
	// completes a handshake as the API server would (by the Service's
	// name), and is served the Secret's certificate.
	trusted := x509.NewCertPool()
	if !trusted.AppendCertsFromPEM(got["validating repo-bans.binderguard.io"]) {
		t.Fatalf("the validating webhook's caBundle is no PEM certificate")
	}
	dial := func(serverName string) (*tls.Conn, error) {
		d := &tls.Dialer{Config: &tls.Config{RootCAs: trusted, ServerName: serverName, MinVersion: tls.VersionTLS12}, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.webhookHost, strconv.Itoa(c.webhookPort)))
		if err != nil {
			return nil, err
		}
		return conn.(*tls.Conn), nil
	}
	for _, name := range certs.DNSNames(ns) {
		conn, err := dial(name)
		if err != nil {
			t.Errorf("TLS handshake with the webhook as %s, trusting only its caBundle: %v", name, err)
			continue
		}
		if peer := conn.ConnectionState().PeerCertificates; len(peer) == 0 || !peer[0].Equal(leaf) {
			t.Errorf("the webhook serves another certificate than the Secret's")
		}
		conn.Close()
	}
	if conn, err := dial("binderguard-webhook.elsewhere.svc"); err == nil {
		conn.Close()
		t.Errorf("the handshake succeeds for a name the certificate is not for: the client does not verify")
	}

	// (6) A configuration recreated from the manifests (break glass undone:
	// `kubectl apply -k` after a delete) gets the CA back.
	vwc := rendered["ValidatingWebhookConfiguration/"+whName].(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if err := env.Client.Delete(ctx, vwc.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, vwc.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the recreated validating configuration gets the CA back", func() error {
		got, err := caBundles()
		if err == nil && !bytes.Equal(got["validating repo-bans.binderguard.io"], secret.Data["ca.crt"]) {
			err = errors.New("no caBundle yet")
		}
		return err
	})

	// (7) The ServiceAccount can read that one Secret, by name, and not the
	// hub's Secrets beside it: the rotator's lists and watches are scoped
	// to the name, which is what let it run under this RBAC at all.
	kube := kubernetes.NewForConfigOrDie(sa.Config())
	if _, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the ServiceAccount lists every Secret in %s: err = %v, want forbidden", ns, err)
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the ServiceAccount lists every webhook configuration: err = %v, want forbidden", err)
	}
	if _, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + certs.SecretName}); err != nil {
		t.Errorf("the ServiceAccount cannot list its own Secret by name: %v", err)
	}
}
