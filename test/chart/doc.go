// Package chart tests the Helm chart in manifests/chart with the real helm
// binary (.tools/bin/helm) and a real kube-apiserver (envtest): helm lint,
// helm template with default and non-default values, values that must be
// refused, the chart as a dependency of an umbrella chart, the README's
// table of values, and a server-side dry run (dryRun: All) of every
// rendering, with the CRDs of the kinds it renders installed.
//
// It only reads the chart; it must never skip when helm or the Kubernetes
// binaries are missing (it fails and says how to install them).
package chart
