# Sourced by up.sh and down.sh: the names and addresses of the single-node
# test cluster, in one place. There is one cluster per machine, so its state
# lives at a fixed path outside any worktree.

# Everything the cluster writes (certs, configs, logs, pids, etcd data,
# containerd root/state, kubelet root dir, runc state) lives here.
S=/tmp/binderguard-cluster
# The node: a bridge we create, whose address is the node IP (kubelet refuses
# a loopback node IP) and the pods' gateway. 198.18.0.0/15 is the
# benchmarking range: no real network uses it.
BRIDGE=bgk0
NODE_IP=198.18.0.1
POD_CIDR=198.18.0.0/24
SERVICE_CIDR=198.19.0.0/24
API_SERVICE_IP=198.19.0.1
DNS_SERVICE_IP=198.19.0.10
NODE_NAME=binderguard-node
# Ports off the defaults so a stray etcd or apiserver of another test does
# not collide; everything but the apiserver and kubelet is on loopback.
ETCD_PORT=23790
ETCD_PEER_PORT=23800
API_PORT=6443
BINDER_PORT=30080
# The CNI network name; libcni keeps its cache under /var/lib/cni/results
# as <name>-<container id>-<ifname>, which down.sh removes by this prefix.
CNI_NET=binderguard-test

SOCK=$S/containerd/containerd.sock
KUBECONFIG_ADMIN=$S/admin.kubeconfig
# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy ingressfwd)

log() { printf 'cluster: %s\n' "$*" >&2; }
# is_running PID: true while PID runs. Not kill -0: the components' parent (the
# up.sh shell) is gone, so an exited one stays a zombie of PID 1 for a while,
# and kill -0 succeeds on a zombie.
is_running() {
	local st
	{ read -r st </proc/"$1"/stat; } 2>/dev/null || return 1
	st=${st##*) } # the state letter follows the parenthesised command name
	[ "${st:0:1}" != Z ]
}
