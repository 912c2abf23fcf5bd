#!/usr/bin/env bash
# Stops the single-node test cluster that up.sh started and removes every
# trace of it: its processes (by recorded PID), the containers and shims
# under its containerd, the pod network namespaces and veths, mounts under
# the state directory, the bridge and its route, the iptables chains that
# kube-proxy, kubelet and up.sh made (KUBE-*, CNI-*, BGK-*), the kubepods
# cgroups kubelet made, the sysctls up.sh changed, and the state directory.
# Safe to call when nothing runs; every step tolerates what is already gone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
[ "$(id -u)" = 0 ] || { echo "cluster-down: needs root" >&2; exit 1; }

# stop PID...: SIGTERM, up to 5 s grace, then SIGKILL.
stop() {
	local p alive deadline=$((SECONDS + 5))
	kill -TERM "$@" 2>/dev/null || true
	while [ $SECONDS -lt $deadline ]; do
		alive=
		for p in "$@"; do is_running "$p" && alive=1; done
		[ -n "$alive" ] || return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
	for p in "$@"; do
		deadline=$((SECONDS + 3))
		while is_running "$p" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
	done
}
names=
pid_of() { [ -f "$S/pids/$1.pid" ] && cat "$S/pids/$1.pid" || true; }

# 1. Everything but containerd, all at once: the state is thrown away, so
#    nothing needs an orderly shutdown (kube-apiserver alone would take its
#    full grace period). containerd stays up so its tasks can be killed
#    through it.
pids=()
for c in "${COMPONENTS[@]}"; do
	[ "$c" != containerd ] || continue
	p=$(pid_of "$c")
	if [ -n "$p" ] && is_running "$p"; then
		pids+=("$p")
		names+=" $c"
	fi
done
if [ ${#pids[@]} -gt 0 ]; then
	log "stopping${names}"
	stop "${pids[@]}"
fi

# 2. Containers: kill every task through containerd, then any process still
#    in the kubepods cgroups (only pods live there), then containerd and the
#    shims it started (their command line names our socket).
if [ -S "$SOCK" ] && [ -n "$(pid_of containerd)" ] && is_running "$(pid_of containerd)"; then
	log "killing containers"
	# libcni caches results outside the state dir, per container id.
	sandboxes=$(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null || true)
	for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
		ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
	done
	sleep 0.5
	for t in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
		ctr -a "$SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
	done
fi
pod_pids=$(find /sys/fs/cgroup/pids/kubepods* -name cgroup.procs -exec cat {} + 2>/dev/null || true)
[ -z "$pod_pids" ] || kill -KILL $pod_pids 2>/dev/null || true
p=$(pid_of containerd)
if [ -n "$p" ] && is_running "$p"; then
	log "stopping containerd"
	stop "$p"
fi
shims=$(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" || true)
[ -z "$shims" ] || stop $shims

# 3. Pod network namespaces: up.sh has containerd pin them under its state
#    dir (unmounted in step 4); this catches any left in /run/netns/cni-*
#    by a containerd without that setting: ours hold an address in the pod
#    range. Deleting the namespace deletes its veth.
for ns in /run/netns/cni-*; do
	[ -e "$ns" ] || continue
	if nsenter --net="$ns" ip -4 -o addr 2>/dev/null | grep -q " ${POD_CIDR%.*}\."; then
		umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
		rm -f "$ns"
	fi
done
for id in ${sandboxes:-}; do
	rm -f /var/lib/cni/results/"$CNI_NET-$id"-* /var/lib/cni/results/cni-loopback-"$id"-*
done
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true

# 4. Mounts under the state dir (kubelet volumes, containerd rootfs and shm),
#    deepest first.
if [ -d "$S" ]; then
	awk -v s="$S/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
fi

# 5. Network: the bridge (its route goes with it), the iptables chains and
#    the rules that jump to them, in every table and both families.
ip link del "$BRIDGE" 2>/dev/null || true
for ipt in iptables ip6tables; do
	command -v "$ipt" >/dev/null || continue
	for t in filter nat mangle raw; do
		rules=$("$ipt" -t "$t" -S 2>/dev/null) || continue
		# Jumps from the built-in chains (rules inside our chains go with them).
		# `|| true`: grep finding nothing is not an error here.
		jumps=$(grep -E '^-A [A-Z]+ .*-j (KUBE|CNI|BGK)-' <<<"$rules" | grep -Ev '^-A (KUBE|CNI|BGK)-' || true)
		while read -r r; do
			[ -z "$r" ] || eval "$ipt -t $t ${r/-A/-D}" 2>/dev/null || true
		done <<<"$jumps"
		chains=$(awk '/^-N (KUBE|CNI|BGK)-/ {print $2}' <<<"$rules")
		for c in $chains; do "$ipt" -t "$t" -F "$c" 2>/dev/null || true; done
		for c in $chains; do "$ipt" -t "$t" -X "$c" 2>/dev/null || true; done
	done
done

# 6. What kubelet and up.sh changed on the host: kubepods cgroups (empty now,
#    removed deepest first), sysctls, and kubelet's log symlinks.
for d in /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/unified/kubepods*; do
	[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done
for f in "$S"/sysctl/*; do
	[ -f "$f" ] || continue
	k=$(basename "$f" | tr . /)
	cat "$f" >"/proc/sys/$k" 2>/dev/null || true
done
# kubelet links container logs in /var/log/containers whatever podLogsDir
# says; ours point into the state dir. The directory goes if it is empty.
find /var/log/containers -maxdepth 1 -lname "$S/*" -delete 2>/dev/null || true
rmdir /var/log/containers 2>/dev/null || true
# kubelet's device-plugin socket is hard-coded to /var/lib/kubelet whatever
# --root-dir says.
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true

rm -rf "$S"
log "down"
