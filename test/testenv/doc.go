// Package testenv starts a real kube-apiserver and etcd (controller-runtime
// envtest) with binderguard's CRDs installed, for tests of the policy
// sources, the status writer and the admission webhook; StartPolicySource
// runs the informer-fed kube policy source those tests share.
//
// Binaries come from KUBEBUILDER_ASSETS, or else from .tools/bin at the
// repository root (`make tools` puts them there). When they are missing the
// test fails and says so: it never skips, so a green run always means the
// API server really ran.
//
// It is test-only support code: production packages must never import it.
package testenv
