// Package dashboard tests manifests/dashboards/binderguard.json against
// real data: a real Prometheus scrapes `binderguard local` (Envoy, the gate,
// xDS), the BinderHub simulator and the admission handlers through a
// launch storm, and every panel's query must return data.
//
// It only reads the dashboard JSON, never the generator, so it tests the
// file operators import. It must never skip when Prometheus or Envoy is
// missing: it fails and names what to install.
package dashboard
