// Package cluster runs binderguard's tests against a real single-node
// Kubernetes built from upstream parts (`make cluster-up`, test/cluster/up.sh):
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
// kubelet, kube-proxy and CoreDNS as plain processes, with the stand-in
// BinderHub of binderhub/ (a Helm release) and a loopback stand-in for its Ingress
// (ingressfwd).
//
// Up brings the cluster up once per package run and returns its kubeconfig
// and BINDER_URL with a stop function. There is one cluster per machine, so
// Up holds a lock file for as long as the cluster is in use: two test
// binaries never share or tear down each other's cluster.
//
// It must never touch anything outside the state directory, the bridge and
// the iptables chains that up.sh and down.sh own, and it must never send
// traffic off the machine (see README.md beside this file).
package cluster
