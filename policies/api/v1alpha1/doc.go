// Package v1alpha1 holds the binderguard.io/v1alpha1 policy API: RepoBan
// and LaunchPolicy, the objects admins edit with kubectl (or keep as YAML
// files in local mode).
//
// The types carry their own validation as OpenAPI schema and CEL rules
// (x-kubernetes-validations), so the API server rejects what a schema can
// tell is wrong; the CRDs in manifests/crds and zz_generated.deepcopy.go are
// generated from these types by `make manifests`.
//
// This package is plain data. It must never parse specs, match
// repositories or talk to an API server: that belongs to policies/spec,
// policies/match and the sources.
//
// +kubebuilder:object:generate=true
// +groupName=binderguard.io
package v1alpha1
