// Command pause is the test cluster's sandbox (pause) image: the first
// process of every pod, which holds the pod's namespaces open. It blocks
// until SIGTERM or SIGINT and then exits 0. It must never do anything else
// (no files, no network, no output on success): the kubelet treats it as
// inert. Unlike the upstream pause it does not reap zombies, so pods with
// shareProcessNamespace are not supported in the test cluster.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
