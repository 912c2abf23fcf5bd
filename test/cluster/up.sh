#!/usr/bin/env bash
# Starts the single-node test cluster from upstream parts as plain processes
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# kubelet, kube-proxy), CoreDNS, the stand-in BinderHub (binderhub/, a Helm release) and
# the loopback ingress forwarder (ingressfwd/), then prints
#   KUBECONFIG=<path>
#   BINDER_URL=http://127.0.0.1:<port>
# on stdout. Progress goes to stderr. Idempotent: with the cluster already
# running it only re-checks readiness and prints the same two lines.
# Needs root (bridge, iptables, mounts) and `make tools`; images are imported
# from bin/images/*.tar (`make images`). Facts behind the settings:
# test/cluster/README.md and shared/reference/cluster-notes.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/env.sh"
bin=$root/.tools/bin
pki=$S/pki
export PATH=$bin:$PATH
# Never let a component reach a registry or any proxy the environment names:
# a missing image must fail here, not send traffic off the machine.
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy NO_PROXY no_proxy

fail() { printf 'cluster-up: %s\n' "$*" >&2; exit 1; }
alive() { [ -f "$S/pids/$1.pid" ] && is_running "$(cat "$S/pids/$1.pid")"; }
# --cache-dir: kubectl's discovery cache in the state dir, not ~/.kube.
kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" --cache-dir "$S/kubectl-cache" "$@"; }

# start NAME CMD...: runs CMD detached from this script (own session, no
# inherited stdout, so `make` and `go test` callers do not wait on it), log
# in logs/NAME.log, pid in pids/NAME.pid.
start() {
	local name=$1; shift
	log "starting $name"
	setsid "$@" </dev/null >"$S/logs/$name.log" 2>&1 &
	echo $! >"$S/pids/$name.pid"
}

# wait_for WHAT SECONDS LOG CMD...: polls CMD until it succeeds; on timeout
# fails with one line naming WHAT and the log to read.
wait_for() {
	local what=$1 secs=$2 logf=$3; shift 3
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "$what did not come up within ${secs}s; see $logf"
		sleep 0.5
	done
}

# dns_answers: one raw DNS query (A kubernetes.default.svc.cluster.local)
# to the kube-dns ClusterIP from the host, true when an answer comes back.
# CoreDNS Ready is not enough: kube-proxy programs the Service's endpoints
# about a second later, and until then the host's query fails with EPERM
# (kube-proxy's "has no endpoints" REJECT rule).
dns_answers() {
	local ok=1
	exec 3<>"/dev/udp/$DNS_SERVICE_IP/53" || return 1
	printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01' >&3 &&
		timeout 1 head -c 12 <&3 >/dev/null && ok=0
	exec 3<&-
	return $ok
}

[ "$(id -u)" = 0 ] || fail "needs root (bridge, iptables, mounts)"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
	[ -x "$bin/$b" ] || fail "$bin/$b is missing: run make tools"
done

# Checked before anything starts, so a missing `make images` leaves nothing behind.
shopt -s nullglob
archives=("$root"/bin/images/*.tar)
[ ${#archives[@]} -gt 0 ] || fail "no image archives in $root/bin/images: run make images"

# Already running? Then every recorded process must be alive; a partial
# cluster is torn down and started afresh rather than patched up.
running=1
for c in "${COMPONENTS[@]}"; do alive "$c" || running=0; done
if [ -d "$S" ] && [ $running = 0 ]; then
	log "found a partial cluster in $S: tearing it down first"
	"$here/down.sh"
fi

if [ $running = 0 ]; then
	mkdir -p "$S"/{sysctl,pids,logs,pki,etcd,kubelet,pod-logs,runc,cni/net.d,cni/ipam,containerd,bin}

	# --- certificates: one CA signs everything --------------------------------
	log "making certificates"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=binderguard-test-ca \
		-keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
	openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
	openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	# cert NAME SUBJECT [SANS]: key + CA-signed cert, client and server usage.
	cert() {
		local ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
		[ -z "${3:-}" ] || ext+=$'\n'"subjectAltName=$3"
		openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
		openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
			-days 30 -extfile <(echo "$ext") -out "$pki/$1.crt" 2>/dev/null
	}
	cert apiserver /CN=kube-apiserver \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
	cert admin "/O=system:masters/CN=binderguard-test-admin"
	cert controller-manager /CN=system:kube-controller-manager
	cert scheduler /CN=system:kube-scheduler
	cert kube-proxy /CN=system:kube-proxy
	cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME"
	cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP"
	# kubeconfig NAME CERT: a kubeconfig for client cert CERT.
	kubeconfig() {
		cat >"$S/$1.kubeconfig" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: binderguard-test
		  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$pki/ca.crt"}
		users:
		- name: $2
		  user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
		contexts:
		- name: binderguard-test
		  context: {cluster: binderguard-test, user: $2}
		current-context: binderguard-test
		EOF
	}
	kubeconfig admin admin
	kubeconfig controller-manager controller-manager
	kubeconfig scheduler scheduler
	kubeconfig kube-proxy kube-proxy
	kubeconfig kubelet kubelet-client

	# --- node network ----------------------------------------------------------
	# The bridge carries the node IP (kubelet and the apiserver bind there) and
	# is the CNI bridge plugin's bridge. Routing the Service range onto it keeps
	# a ClusterIP packet on this bridge even before kube-proxy has a rule for it.
	log "creating bridge $BRIDGE $NODE_IP"
	ip link add "$BRIDGE" type bridge 2>/dev/null || true
	ip addr replace "$NODE_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
	# Pod -> ClusterIP -> pod on the same bridge needs routing and bridged
	# traffic through iptables; remember the old values so down.sh restores them.
	for k in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables; do
		f=$S/sysctl/$(echo "$k" | tr / .)
		[ -f "$f" ] || cat "/proc/sys/$k" >"$f"
		echo 1 >"/proc/sys/$k"
	done
	# Forwarding is on now: drop anything a pod sends that is not for a pod
	# (ClusterIPs are DNATed to pods or to the node before FORWARD), so no pod
	# can send traffic off the machine.
	iptables -N BGK-GUARD 2>/dev/null || iptables -F BGK-GUARD
	iptables -A BGK-GUARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP
	iptables -C FORWARD -j BGK-GUARD 2>/dev/null || iptables -I FORWARD 1 -j BGK-GUARD
	cat >"$S/cni/net.d/10-$CNI_NET.conflist" <<-EOF
	{
	  "cniVersion": "0.4.0",
	  "name": "$CNI_NET",
	  "plugins": [{
	    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
	    "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam",
	      "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "198.18.0.10", "gateway": "$NODE_IP"}]],
	      "routes": [{"dst": "0.0.0.0/0"}]}
	  }]
	}
	EOF
	# Pods with dnsPolicy Default (CoreDNS) get this file: no upstream, so
	# nothing in the cluster asks a real resolver anything.
	echo "# binderguard test cluster: no upstream DNS" >"$S/resolv.conf"

	# --- etcd and kube-apiserver -----------------------------------------------
	start etcd etcd --name binderguard-test --data-dir "$S/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "binderguard-test=http://127.0.0.1:$ETCD_PEER_PORT"
	start kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" \
		--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true --profiling=false
	wait_for "kube-apiserver" 120 "$S/logs/kube-apiserver.log" kc get --raw /readyz

	# --- containerd --------------------------------------------------------------
	# Own root, state, socket and runc root; restrict_oom_score_adj because
	# processes here lack CAP_SYS_RESOURCE (runc otherwise fails "can't get
	# final child's PID from pipe: EOF"). The proxy variables point at a closed
	# loopback port: a pull of a missing image fails at once, never leaves.
	cat >"$S/containerd/config.toml" <<-EOF
	version = 2
	root = "$S/containerd/root"
	state = "$S/containerd/state"
	disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
	[grpc]
	  address = "$SOCK"
	[ttrpc]
	  address = "$S/containerd/containerd.sock.ttrpc"
	[plugins."io.containerd.internal.v1.opt"]
	  path = "$S/containerd/opt"
	[plugins."io.containerd.grpc.v1.cri"]
	  sandbox_image = "docker.io/local/pause:v1"
	  restrict_oom_score_adj = true
	  stream_server_address = "127.0.0.1"
	  # Pod network namespaces under the state dir, not /var/run/netns.
	  netns_mounts_under_state_dir = true
	  [plugins."io.containerd.grpc.v1.cri".containerd]
	    snapshotter = "overlayfs"
	    default_runtime_name = "runc"
	    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
	      runtime_type = "io.containerd.runc.v2"
	      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
	        SystemdCgroup = false
	        Root = "$S/runc"
	  [plugins."io.containerd.grpc.v1.cri".cni]
	    bin_dir = "/usr/lib/cni"
	    conf_dir = "$S/cni/net.d"
	    max_conf_num = 1
	EOF
	HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
		start containerd containerd --config "$S/containerd/config.toml"
	wait_for "containerd" 30 "$S/logs/containerd.log" ctr -a "$SOCK" version
fi

# --- images: whatever `make images` produced ---------------------------------
# Imported on every call (cheap when present), so a rebuilt image lands in a
# running cluster too.
for a in "${archives[@]}"; do
	log "importing $(basename "$a")"
	ctr -a "$SOCK" -n k8s.io images import "$a" >>"$S/logs/images.log" 2>&1 ||
		fail "importing $a failed; see $S/logs/images.log"
done
images=$(ctr -a "$SOCK" -n k8s.io images ls -q)
for ref in docker.io/local/pause:v1 ghcr.io/binderguard/fakebinder:v0.1.0; do
	grep -qx "$ref" <<<"$images" || fail "image $ref is not in bin/images/*.tar; run make images"
done
coredns_image=$(grep '^docker.io/local/coredns:' <<<"$images" | sort -V | tail -1 || true)
[ -n "$coredns_image" ] || fail "no docker.io/local/coredns image in bin/images/*.tar; run make images"

if [ $running = 0 ]; then
	# --- controllers, kubelet, kube-proxy ---------------------------------------
	start kube-controller-manager kube-controller-manager --kubeconfig "$S/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$S/controller-manager.kubeconfig" --authorization-kubeconfig "$S/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false \
		--profiling=false
	start kube-scheduler kube-scheduler --kubeconfig "$S/scheduler.kubeconfig" \
		--authentication-kubeconfig "$S/scheduler.kubeconfig" --authorization-kubeconfig "$S/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false

	# cgroup v1 here: kubelet 1.37 refuses it unless failCgroupV1 is false.
	# Eviction thresholds low: a shared build machine's disk must not evict
	# the test pods.
	cat >"$S/kubelet.yaml" <<-EOF
	apiVersion: kubelet.config.k8s.io/v1beta1
	kind: KubeletConfiguration
	failCgroupV1: false
	cgroupDriver: cgroupfs
	containerRuntimeEndpoint: unix://$SOCK
	address: $NODE_IP
	healthzBindAddress: 127.0.0.1
	readOnlyPort: 0
	authentication:
	  anonymous: {enabled: false}
	  webhook: {enabled: true}
	  x509: {clientCAFile: $pki/ca.crt}
	authorization: {mode: Webhook}
	tlsCertFile: $pki/kubelet-serving.crt
	tlsPrivateKeyFile: $pki/kubelet-serving.key
	clusterDomain: cluster.local
	clusterDNS: [$DNS_SERVICE_IP]
	resolvConf: $S/resolv.conf
	podLogsDir: $S/pod-logs
	failSwapOn: false
	evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
	imageGCHighThresholdPercent: 100
	EOF
	start kubelet kubelet --config "$S/kubelet.yaml" --kubeconfig "$S/kubelet.kubeconfig" \
		--root-dir "$S/kubelet" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"

	# iptables mode; conntrack maxPerCore 0 leaves the machine's conntrack
	# table size alone; NodePorts only on the bridge, never on loopback.
	cat >"$S/kube-proxy.yaml" <<-EOF
	apiVersion: kubeproxy.config.k8s.io/v1alpha1
	kind: KubeProxyConfiguration
	mode: iptables
	clusterCIDR: $POD_CIDR
	hostnameOverride: $NODE_NAME
	clientConnection: {kubeconfig: $S/kube-proxy.kubeconfig}
	healthzBindAddress: 127.0.0.1:10256
	metricsBindAddress: 127.0.0.1:10249
	nodePortAddresses: ["$POD_CIDR"]
	conntrack: {maxPerCore: 0}
	iptables: {localhostNodePorts: false}
	EOF
	start kube-proxy kube-proxy --config "$S/kube-proxy.yaml"

	# --- the loopback stand-in for the ingress controller -----------------------
	log "building ingressfwd"
	(cd "$root" && go build -o "$S/bin/ingressfwd" ./test/cluster/ingressfwd) >"$S/logs/ingressfwd-build.log" 2>&1 ||
		fail "building test/cluster/ingressfwd failed; see $S/logs/ingressfwd-build.log"
	start ingressfwd "$S/bin/ingressfwd" --kubeconfig "$KUBECONFIG_ADMIN" --listen "127.0.0.1:$BINDER_PORT" \
		--namespace binderhub --ingress binderhub,binderguard
fi

# --- readiness -------------------------------------------------------------------
wait_for "node $NODE_NAME Ready" 120 "$S/logs/kubelet.log" \
	kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
log "applying CoreDNS ($coredns_image)"
sed "s|COREDNS_IMAGE|$coredns_image|; s|DNS_SERVICE_IP|$DNS_SERVICE_IP|" "$here/coredns.yaml" | kc apply -f - >>"$S/logs/apply.log" 2>&1 ||
	fail "applying test/cluster/coredns.yaml failed; see $S/logs/apply.log"
log "applying the stand-in BinderHub"
kc create namespace binderhub --dry-run=client -o yaml | kc apply -f - >>"$S/logs/apply.log" 2>&1
# A Helm release, like BinderHub's: the binderguard chart's Ingress handover
# is a helm upgrade of it (ingress.enabled: false). --reset-values: a
# cluster-up on a running cluster restores BinderHub's own Ingress.
HELM_CACHE_HOME=$S/helm/cache HELM_CONFIG_HOME=$S/helm/config HELM_DATA_HOME=$S/helm/data \
	"$bin/helm" --kubeconfig "$KUBECONFIG_ADMIN" upgrade --install binderhub "$here/binderhub" --namespace binderhub \
	--reset-values >>"$S/logs/apply.log" 2>&1 ||
	fail "installing the stand-in BinderHub (test/cluster/binderhub) failed; see $S/logs/apply.log"
wait_for "CoreDNS" 120 "$S/logs/kubelet.log (kubectl -n kube-system describe pod -l k8s-app=kube-dns)" \
	kc -n kube-system rollout status deploy/coredns --timeout=1s
wait_for "kube-dns answering at $DNS_SERVICE_IP:53 from the host" 30 "$S/logs/kube-proxy.log" dns_answers
wait_for "binder (stand-in BinderHub)" 120 "$S/logs/kubelet.log (kubectl -n binderhub describe pod -l component=binder)" \
	kc -n binderhub rollout status deploy/binder --timeout=1s
wait_for "BINDER_URL http://127.0.0.1:$BINDER_PORT/versions" 30 "$S/logs/ingressfwd.log" \
	curl -fsS --noproxy '*' "http://127.0.0.1:$BINDER_PORT/versions"
log "ready"
echo "KUBECONFIG=$KUBECONFIG_ADMIN"
echo "BINDER_URL=http://127.0.0.1:$BINDER_PORT"
