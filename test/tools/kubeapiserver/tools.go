//go:build tools

// Package kubeapiserver exists only so `go build k8s.io/kubernetes/cmd/kube-apiserver`
// resolves against the pinned module graph in this directory.
package kubeapiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
