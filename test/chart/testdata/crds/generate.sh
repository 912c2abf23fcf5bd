#!/usr/bin/env bash
# Regenerates the prometheus-operator CRDs the chart's tests install into
# envtest (PodMonitor, PrometheusRule). Only the module with the API types,
# github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring, is
# on the Go module proxy, not the repository's CRD YAML, so they are made the
# way prometheus-operator makes them: controller-gen over those types.
# Gateway API's and cert-manager's CRDs are read from their modules at test
# time (chart_test.go, crdModules).
set -euo pipefail
version=v0.95.2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
go mod init crdgen >/dev/null 2>&1
go get "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$version" >/dev/null 2>&1
printf 'package crdgen\n\nimport _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"\n' >tools.go
go mod tidy >/dev/null 2>&1
go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 crd:crdVersions=v1,allowDangerousTypes=true \
	paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir=out
for kind in podmonitors prometheusrules; do
	cp "out/monitoring.coreos.com_$kind.yaml" "$here/"
done
echo "prometheus-operator $version CRDs written to $here"
