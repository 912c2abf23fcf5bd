// Package policies is the root of binderguard's policy tree; it holds no
// code. The layers, each importing only those above it in this list:
//
//   - api/v1alpha1: RepoBan and LaunchPolicy, the CRD types admins edit.
//   - spec: launch specs, requests and repository URLs to one canonical
//     repository identity (the one matching model shared by every part).
//   - match: compiled ban index and launch-policy selection (pure).
//   - latest: the newest value handed on to subscribers, and one-slot
//     kicks; used by the Store and also by the gate for its State.
//   - snapshot: validated objects to an immutable, versioned Snapshot, and
//     the Store that hands the latest one to the gate, xDS and webhook.
//   - source/file, source/kube: YAML directory or informers to the Store.
//   - status: writes each object's Accepted condition back (Relay: on the
//     elected leader only).
//   - importer: BinderHub's banned_specs config to RepoBans (pure).
//
// Nothing here may import the gate, xDS or webhook packages.
package policies
