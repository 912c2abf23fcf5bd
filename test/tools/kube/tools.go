//go:build tools

// Package kube exists only so `go build k8s.io/kubernetes/cmd/...` resolves the
// Kubernetes binaries binderguard's tests run (kube-apiserver for envtest; the
// control plane, kubelet, kube-proxy and kubectl for the test cluster in
// test/cluster) against the pinned module graph in this directory. It must
// never be imported by binderguard itself.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
