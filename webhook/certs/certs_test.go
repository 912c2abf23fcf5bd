package certs

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/rest"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{External, SelfSigned} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMode("cert-manager"); err == nil {
		t.Errorf("ParseMode accepts cert-manager; want an error naming the two modes")
	}
}

// TestScopeToNames checks the rest.Config the rotator's informers get: their
// lists and watches of the Secret and the webhook configurations name the
// one object (what lets RBAC's resourceNames allow them), and nothing else
// is touched.
func TestScopeToNames(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery
	}))
	defer srv.Close()
	cfg := scopeToNames(&rest.Config{Host: srv.URL}, map[string]string{
		"/api/v1/namespaces/bh/secrets":                                         SecretName,
		"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations": "binderguard-bh",
	})
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ method, url, want string }{
		"a list of the Secrets names the one Secret": {
			http.MethodGet, "/api/v1/namespaces/bh/secrets?limit=500",
			"GET /api/v1/namespaces/bh/secrets?fieldSelector=metadata.name%3Dbinderguard-webhook-tls&limit=500"},
		"a watch of the webhook configurations names the install's": {
			http.MethodGet, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations?watch=true",
			"GET /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations?fieldSelector=metadata.name%3Dbinderguard-bh&watch=true"},
		"a field selector already there is left alone (RBAC then refuses a wider one)": {
			http.MethodGet, "/api/v1/namespaces/bh/secrets?fieldSelector=type%3DOpaque",
			"GET /api/v1/namespaces/bh/secrets?fieldSelector=type%3DOpaque"},
		"a get of one object is untouched": {
			http.MethodGet, "/api/v1/namespaces/bh/secrets/binderguard-webhook-tls",
			"GET /api/v1/namespaces/bh/secrets/binderguard-webhook-tls?"},
		"an update is untouched": {
			http.MethodPut, "/api/v1/namespaces/bh/secrets/binderguard-webhook-tls",
			"PUT /api/v1/namespaces/bh/secrets/binderguard-webhook-tls?"},
		"another namespace's Secrets are untouched": {
			http.MethodGet, "/api/v1/namespaces/other/secrets",
			"GET /api/v1/namespaces/other/secrets?"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.url, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got != tc.want {
				t.Errorf("the API server got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
