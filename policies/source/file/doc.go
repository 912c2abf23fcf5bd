// Package file is the local-mode policy source: a directory of the same
// RepoBan and LaunchPolicy YAML files that `kubectl apply -f DIR` reads
// (multi-document YAML or JSON, apiVersion binderguard.io/v1alpha1),
// watched with fsnotify and turned into snapshots in a snapshot.Store.
//
// Files are decoded strictly (unknown fields, kinds and API versions are
// errors) and every object is validated the way the CRD's schema and CEL
// rules would, so local mode refuses what the API server would refuse.
// Each problem is reported with file, line and reason.
//
// A bad file never wins: when a file stops being valid, the objects it
// held while it was last valid stay in force (a file that was never valid
// contributes nothing) until it is fixed or deleted, and every other
// file's changes still take effect. That keeps a typo in one file from
// lifting the bans in it, and keeps an unrelated edit from being held
// hostage by it. Deleting a file removes its objects.
//
// The directory, not each file, is watched, so editors that save by
// writing a new file and renaming it over the old one, and Kubernetes
// ConfigMap volumes that swap a symlink, are both seen. Events are
// debounced; a periodic rescan covers file systems without notifications.
//
// This package must never decide what a policy means; it only reads,
// validates and hands objects to policies/snapshot.
package file
