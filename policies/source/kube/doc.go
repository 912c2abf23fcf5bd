// Package kube is the in-cluster policy source: it watches RepoBan and
// LaunchPolicy objects through informers, builds an immutable
// snapshot.Snapshot from them on every change, and publishes it to a
// snapshot.Store.
//
// It also rebuilds when the next ban expires, leaving expired bans out, so
// subscribers (the xDS edge) learn of an expiry without any API change.
// After each build it hands the objects and their validation results to an
// optional hook, which is where a status writer (package policies/status)
// is wired in.
//
// It only reads from the API server: it must never write policy objects or
// their status, and never decide what a policy means (package snapshot does).
package kube
