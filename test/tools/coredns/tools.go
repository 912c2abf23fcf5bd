//go:build tools

// Package coredns exists only so `go build github.com/coredns/coredns`
// resolves against the pinned module graph in this directory. It must never
// be imported: CoreDNS is a test-cluster image, not part of binderguard.
package coredns

import _ "github.com/coredns/coredns"
