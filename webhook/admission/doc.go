// Package admission holds binderguard's two pod admission handlers, thin
// and typed on controller-runtime's admission package: each decodes the
// request, dispatches to the pure decisions in webhook/evaluate, and turns
// the verdict into an AdmissionResponse (a JSON patch, a denial naming the
// policy, or admission warnings). Findings of Audit-mode policies become a
// metric and a Kubernetes Event.
//
// A handler must never call the Kubernetes API or block on anything but the
// in-memory policy snapshot: the API server waits on it for every binder
// pod, and the validating webhook fails closed.
package admission
