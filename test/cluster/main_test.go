package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// shared is the package's one cluster, brought up in TestMain; nil when
// skipReason says why the cluster tests are skipped.
var (
	shared     *Cluster
	skipReason string
)

// upTimeout covers a cold `make tools` of the Kubernetes binaries (about ten
// minutes on two cores) plus a cold cluster-up.
const upTimeout = 20 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse() // testing.Short needs the flags parsed
	switch {
	case testing.Short():
		skipReason = "-short leaves out the test cluster, which takes minutes to start"
		return m.Run()
	case os.Geteuid() != 0:
		// A skip here would hide the install test from `make test`: fail.
		fmt.Fprintln(os.Stderr, "cluster: the test cluster needs root (bridge, iptables, mounts); run make test as root, or go test -short to leave it out")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	c, stop, err := Up(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		return 1
	}
	shared = c
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// requireCluster returns the package's cluster or skips the test.
func requireCluster(t *testing.T) *Cluster {
	t.Helper()
	if shared == nil {
		t.Skip(skipReason)
	}
	return shared
}
