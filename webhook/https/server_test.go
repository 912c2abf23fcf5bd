package https_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/binderguard/binderguard/webhook/admission"
	"github.com/binderguard/binderguard/webhook/evaluate"
	"github.com/binderguard/binderguard/webhook/https"
	"github.com/binderguard/binderguard/webhook/internal/testtls"
)

type noPolicies struct{}

func (noPolicies) BanURL(u string) (evaluate.Ban, bool, error) {
	if u == "https://github.com/bad/miner" {
		return evaluate.Ban{Policy: "RepoBan/binder/crypto", Rule: "gh/bad/miner", Mode: evaluate.ModeEnforce, Repo: "github.com/bad/miner"}, true, nil
	}
	return evaluate.Ban{}, false, nil
}
func (noPolicies) BanRequest(string) (evaluate.Ban, bool, error) { return evaluate.Ban{}, false, nil }
func (noPolicies) BuildFor(string) evaluate.BuildPolicy {
	return evaluate.BuildPolicy{Policy: "default"}
}

// running starts the real server on a loopback port with a fresh
// certificate and returns its address, the certificate directory and a
// client trusting it; the server stops when the test ends.
func running(t *testing.T) (string, string, *http.Client, webhook.Server) {
	t.Helper()
	dir := t.TempDir()
	pool := testtls.Write(t, dir)
	hooks, err := admission.New(admission.Config{Policies: func(time.Time) (evaluate.Policies, bool) { return noPolicies{}, true }})
	if err != nil {
		t.Fatal(err)
	}
	port := testtls.FreePort(t)
	srv, err := https.New(https.Config{Host: "127.0.0.1", Port: port, CertDir: dir}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	ready := srv.StartedChecker()
	deadline := time.Now().Add(10 * time.Second)
	for ready(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("webhook server not ready: %v", ready(nil))
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
	t.Cleanup(client.CloseIdleConnections)
	return fmt.Sprintf("127.0.0.1:%d", port), dir, client, srv
}

func review(t *testing.T, pod *corev1.Pod) []byte {
	raw, _ := json.Marshal(pod)
	b, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: "CREATE",
			Namespace: "binder", Name: pod.Name, Object: runtime.RawExtension{Raw: raw}},
	})
	return b
}

func banned() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "build-1", Namespace: "binder",
		Labels: map[string]string{"component": "binderhub-build"}, Annotations: map[string]string{"binder-repo": "https://github.com/bad/miner"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "builder", Image: "r2d"}}}}
}

// TestRawBodies posts what a broken or hostile client might send to the
// real handlers over TLS: every answer is a well-formed AdmissionReview
// with an error status, and the server keeps serving.
func TestRawBodies(t *testing.T) {
	addr, _, client, _ := running(t)
	huge := append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":{"metadata":{"name":"`),
		bytes.Repeat([]byte("a"), 8<<20)...)
	tests := map[string]struct {
		body        []byte
		contentType string
		code        int32
		message     string
	}{
		"an empty body":                    {nil, "application/json", 400, "request body is empty"},
		"garbage that is not JSON":         {[]byte("\x00\xffnot json{"), "application/json", 400, ""},
		"JSON of the wrong kind":           {[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`), "application/json", 400, ""},
		"a review with no request":         {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "application/json", 400, "binderguard admits only core/v1 Pods"},
		"a review of another resource":     {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"ConfigMap"},"operation":"CREATE","object":{}}}`), "application/json", 400, "binderguard admits only core/v1 Pods"},
		"a review whose object is broken":  {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":"nope"}}}}`), "application/json", 400, "decoding the pod"},
		"a body over the size limit":       {huge, "application/json", 413, "too large"},
		"a body of the wrong content type": {review(t, banned()), "text/plain", 400, "expected application/json"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{admission.ValidatePath, admission.MutatePath} {
				resp, err := client.Post("https://"+addr+path, tc.contentType, bytes.NewReader(tc.body))
				if err != nil {
					t.Fatalf("POST %s: %v", path, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var ar admissionv1.AdmissionReview
				if err := json.Unmarshal(body, &ar); err != nil || ar.Response == nil {
					t.Fatalf("%s answered %d %q, not an AdmissionReview: %v", path, resp.StatusCode, body, err)
				}
				r := ar.Response
				if r.Allowed || r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.message) {
					t.Fatalf("%s answered %+v, want code %d and a message containing %q", path, r.Result, tc.code, tc.message)
				}
			}
		})
	}
	// Still serving, and still deciding correctly.
	resp, err := client.Post("https://"+addr+admission.ValidatePath, "application/json", bytes.NewReader(review(t, banned())))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		t.Fatal(err)
	}
	if ar.Response.Allowed || ar.Response.UID != "u-1" || !strings.Contains(ar.Response.Result.Message, "RepoBan/binder/crypto") {
		t.Fatalf("banned pod after the bad bodies: %+v", ar.Response)
	}
}

// TestTLS checks the protocol floor and that HTTP/2 is never negotiated.
func TestTLS(t *testing.T) {
	addr, dir, _, _ := running(t)
	_ = dir
	tests := map[string]struct {
		cfg     *tls.Config
		wantErr bool
		version uint16
	}{
		"TLS 1.1 is refused":                    {&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}, true, 0},
		"TLS 1.2 is accepted":                   {&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}, false, tls.VersionTLS12},
		"TLS 1.3 is chosen when the client can": {&tls.Config{InsecureSkipVerify: true}, false, tls.VersionTLS13},
		"HTTP/2 is not offered":                 {&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}, false, tls.VersionTLS13},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", addr, tc.cfg)
			if tc.wantErr {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.Version != tc.version {
				t.Errorf("version %x, want %x", st.Version, tc.version)
			}
			if st.NegotiatedProtocol == "h2" {
				t.Error("negotiated HTTP/2")
			}
		})
	}
}

// TestCertificateRotation replaces the serving certificate on disk and
// waits for the server to present the new one without a restart.
func TestCertificateRotation(t *testing.T) {
	addr, dir, _, _ := running(t)
	before, err := testtls.Serial(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := testtls.Write(t, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		after, err := testtls.Serial(addr, pool)
		if err == nil && after.Cmp(before) != 0 {
			return
		}
		var uerr x509.UnknownAuthorityError
		if err != nil && !errors.As(err, &uerr) && !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("dialing after rotation: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still presents the old certificate (serial %v, err %v)", before, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
