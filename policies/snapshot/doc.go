// Package snapshot is the one immutable view of all policies that the
// launch gate, the xDS control plane and the admission webhook read.
//
// New turns RepoBan and LaunchPolicy objects (from the Kubernetes informer
// source or the YAML file source, the same types either way) into a
// Snapshot: each object is validated the way the CRD's schema and CEL rules
// would, repositories are parsed to identities, regexes compiled, and
// settings resolved against built-in defaults. Building is best-effort: an
// invalid object is left out and reported as an *ObjectError naming the
// object and the field, so a status writer can set its Accepted condition,
// while every valid object still takes effect.
//
// A Snapshot never changes after New returns; its Version is a content
// hash of the normalised inputs, so two sources that hold the same policies
// produce the same Version and a no-op change can be recognised and
// skipped. Expiry of bans is evaluated at query time (every query takes
// now), and NextExpiry says when the answer to Bans will next change.
//
// Store holds the latest Snapshot and tells subscribers about new ones.
//
// This package must never do I/O or talk to Kubernetes; sources do that.
package snapshot
