package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/binderguard/binderguard/webhook/certs"
	"github.com/binderguard/binderguard/xds/ir"
)

func TestParseServe(t *testing.T) {
	// The Secret mount the default self-signed mode needs.
	good := []string{"--upstream", "http://binder.ns.svc", "--cert-dir", t.TempDir()}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string // "" = valid
		check   func(t *testing.T, c serveConfig)
	}{
		"the upstream is required": {args: nil, wantErr: "--upstream is required"},
		"an upstream without a scheme is refused": {
			args: []string{"--upstream", "binder:80", "--leader-elect=false"}, wantErr: "want an http or https URL",
		},
		"an upstream with a path is refused, since BinderHub's base URL lives in its own paths": {
			args: []string{"--upstream", "http://binder/hub/", "--leader-elect=false"}, wantErr: "no path",
		},
		"a listen address without a port is refused": {
			args: append(slices.Clone(good), "--gate-addr", "8081", "--leader-elect=false"), wantErr: "--gate-addr",
		},
		"a webhook port out of range is refused": {
			args: append(slices.Clone(good), "--webhook-port", "70000", "--leader-elect=false"), wantErr: "--webhook-port",
		},
		"a missing cert dir is refused": {
			args: append(slices.Clone(good), "--cert-dir", "/does/not/exist", "--leader-elect=false"), wantErr: "--cert-dir",
		},
		"an unknown log level is refused": {
			args: append(slices.Clone(good), "--log-level", "loud", "--leader-elect=false"), wantErr: "--log-level",
		},
		"a bad trusted peer is refused": {
			args: append(slices.Clone(good), "--gate-trusted-peers", "10.0.0.0/8,nope", "--leader-elect=false"), wantErr: "--gate-trusted-peers",
		},
		"an unknown certificate mode is refused": {
			args: append(slices.Clone(good), "--webhook-cert-mode", "cert-manager"), env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "--webhook-cert-mode",
		},
		"self-signed certificates need the Secret's mount": {
			args: []string{"--upstream", "http://binder.ns.svc"}, env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "needs --cert-dir",
		},
		"self-signed certificates need the install's namespace": {
			args: append(slices.Clone(good), "--namespace=", "--leader-elect=false"), wantErr: "install's namespace",
		},
		"external certificates need neither": {
			args: []string{"--upstream", "http://binder.ns.svc", "--webhook-cert-mode=external", "--namespace=", "--leader-elect=false"},
			check: func(t *testing.T, c serveConfig) {
				if c.certMode != certs.External || c.installNamespace != "" {
					t.Errorf("mode %s install namespace %q, want external and none", c.certMode, c.installNamespace)
				}
			},
		},
		"without the webhook no certificate is needed, whatever the mode": {
			args: []string{"--upstream", "http://binder.ns.svc", "--webhook=false"}, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.webhook {
					t.Error("webhook on, want off")
				}
			},
		},
		"stray arguments are refused": {
			args: append(slices.Clone(good), "extra"), env: map[string]string{"POD_NAMESPACE": "binder"}, wantErr: "unexpected arguments",
		},
		"the pod's namespace is watched and holds the lease by default": {
			args: good, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.namespace != "binder" || c.leaseNamespace != "binder" || !c.leaderElect {
					t.Errorf("namespace %q lease %q leaderElect %v, want binder, binder, true", c.namespace, c.leaseNamespace, c.leaderElect)
				}
				if c.gateEndpoint != (ir.Endpoint{}) || c.envoyListen.String() != "0.0.0.0:8080" || c.xffHops != 1 {
					t.Errorf("gate endpoint %s, envoy listen %s, xff hops %d", c.gateEndpoint, c.envoyListen, c.xffHops)
				}
				if c.upstream.Host != "binder.ns.svc" || !c.webhook || c.webhookPort != 9443 {
					t.Errorf("upstream %s, webhook %v on port %d", c.upstream, c.webhook, c.webhookPort)
				}
				if c.certMode != certs.SelfSigned || c.installNamespace != "binder" {
					t.Errorf("certificate mode %s for namespace %q, want self-signed for binder", c.certMode, c.installNamespace)
				}
			},
		},
		"an explicit empty namespace watches every namespace": {
			args: append(slices.Clone(good), "--namespace="), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.namespace != "" || c.leaseNamespace != "binder" {
					t.Errorf("namespace %q lease %q, want all and binder", c.namespace, c.leaseNamespace)
				}
			},
		},
		"extra provider prefixes are read": {
			args: append(slices.Clone(good), "--extra-providers", " custom, my.forge"), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if got := c.providers.Extra(); !slices.Equal(got, []string{"custom", "my.forge"}) {
					t.Errorf("extra providers %q, want custom and my.forge", got)
				}
			},
		},
		"no extra providers by default": {
			args: good, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.providers.Known("custom") || !c.providers.Known("gh") {
					t.Errorf("default providers %q", c.providers.Providers())
				}
			},
		},
		"an extra provider that is built in is refused": {
			args: append(slices.Clone(good), "--extra-providers", "custom,gh"), env: map[string]string{"POD_NAMESPACE": "binder"},
			wantErr: `--extra-providers: extra provider "gh" is one of BinderHub's built-in providers`,
		},
		"no CORS origin by default, as BinderHub": {
			args: good, env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.corsOrigin != "" {
					t.Errorf("CORS origin %q by default, want none", c.corsOrigin)
				}
			},
		},
		"the CORS origin is read": {
			args: append(slices.Clone(good), "--cors-allow-origin", "https://book.example.org"), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.corsOrigin != "https://book.example.org" {
					t.Errorf("CORS origin %q", c.corsOrigin)
				}
			},
		},
		"a CORS origin that is no header value is refused": {
			args: append(slices.Clone(good), "--cors-allow-origin", "*\nSet-Cookie: a=b"), env: map[string]string{"POD_NAMESPACE": "binder"},
			wantErr: `--cors-allow-origin: not a valid HTTP header value`,
		},
		"the gate Service is named for EDS": {
			args: append(slices.Clone(good), "--gate-service", "binderguard-gate"), env: map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.gateService != "binderguard-gate" || c.installNamespace != "binder" {
					t.Errorf("gate service %q in %q", c.gateService, c.installNamespace)
				}
			},
		},
		"a gate Service that is not a Service name is refused": {
			args: append(slices.Clone(good), "--gate-service", "binderguard-gate.ns.svc"), env: map[string]string{"POD_NAMESPACE": "binder"},
			wantErr: `--gate-service "binderguard-gate.ns.svc": not a Service name`,
		},
		"the gates named twice are refused": {
			args: append(slices.Clone(good), "--gate-service", "binderguard-gate", "--gate-endpoint", "binderguard-gate.ns.svc:8081"), env: map[string]string{"POD_NAMESPACE": "binder"},
			wantErr: "--gate-service and --gate-endpoint both name the gates",
		},
		"a headless gate Service can be named as the gate endpoint": {
			args: append(slices.Clone(good), "--gate-endpoint", "binderguard-gate.ns.svc:8081", "--gate-trusted-peers", "10.0.0.0/8, fd00::/8"),
			env:  map[string]string{"POD_NAMESPACE": "binder"},
			check: func(t *testing.T, c serveConfig) {
				if c.gateEndpoint.Host != "binderguard-gate.ns.svc" || len(c.trustedPeers) != 2 {
					t.Errorf("gate endpoint %s, trusted %v", c.gateEndpoint, c.trustedPeers)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := parseServe(tc.args, io.Discard, env(tc.env))
			if tc.wantErr != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
