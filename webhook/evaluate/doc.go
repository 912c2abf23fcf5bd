// Package evaluate decides what binderguard's admission webhook does with a
// pod: which binder pod it is, which repository it serves, whether a ban or
// a build limit applies, and the JSON patch that brings a build pod within
// its LaunchPolicy.
//
// It is pure: a pod and a policy view in, a Verdict out. It must never call
// the Kubernetes API, read files, log, or keep state between calls, so the
// webhook handler and `binderguard policy test -f POD.yaml` give the same
// answer for the same pod and policies.
package evaluate
