// Package kube is the in-cluster policy source: it watches RepoBan and
// LaunchPolicy objects through informers, builds an immutable
// snapshot.Snapshot from them on every change, and publishes it to a
// snapshot.Store.
//
// Ban expiry needs no rebuild: the snapshot holds expired bans and judges
// expiry at query time, and the one consumer that caches what it derived
// (the xDS controller, xds/controller.WatchPolicies) re-applies the
// snapshot at its NextExpiry, whichever source it came from. After each
// build it hands the objects and their validation results to an
// optional hook, which is where a status writer (package policies/status)
// is wired in.
//
// It only reads from the API server: it must never write policy objects or
// their status, and never decide what a policy means (package snapshot does).
package kube
