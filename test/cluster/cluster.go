package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// KeepEnv names the environment variable that, set to 1, leaves the cluster
// running after the tests (the stop function then only releases the lock).
const KeepEnv = "BINDERGUARD_KEEP_CLUSTER"

// lockPath serialises test binaries that use the cluster: one per machine.
const lockPath = "/tmp/binderguard-cluster.lock"

// Cluster is a running test cluster.
type Cluster struct {
	// Kubeconfig is the absolute path of an admin kubeconfig.
	Kubeconfig string
	// BinderURL is http://127.0.0.1:<port>, the loopback stand-in for the
	// `binderhub` Ingress: it sends requests to the Ingress's backend Service.
	BinderURL string
	// Root is the repository root.
	Root string
}

// Up takes the machine's cluster lock (waiting for another user to finish),
// runs `make cluster-up` and returns the cluster and a function that runs
// `make cluster-down` (unless BINDERGUARD_KEEP_CLUSTER=1) and releases the
// lock. Progress lines from make go to stderr.
func Up(ctx context.Context) (*Cluster, func() error, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, nil, err
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the cluster lock %s: %w", lockPath, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("taking the cluster lock %s: %w", lockPath, err)
	}
	release := func() error { return lock.Close() } // closing drops the flock

	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", root, "cluster-up")
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("make cluster-up: %w", err), down(root), release())
	}
	c := &Cluster{Root: root}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "KUBECONFIG="); ok {
			c.Kubeconfig = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "BINDER_URL="); ok {
			c.BinderURL = v
		}
	}
	if c.Kubeconfig == "" || c.BinderURL == "" {
		return nil, nil, errors.Join(fmt.Errorf("make cluster-up printed no KUBECONFIG= or BINDER_URL= line:\n%s", stdout.String()), release())
	}
	stop := func() error {
		if os.Getenv(KeepEnv) == "1" {
			fmt.Fprintf(os.Stderr, "cluster: left running (%s=1); KUBECONFIG=%s BINDER_URL=%s\n", KeepEnv, c.Kubeconfig, c.BinderURL)
			return release()
		}
		return errors.Join(down(root), release())
	}
	return c, stop, nil
}

func down(root string) error {
	cmd := exec.Command("make", "-s", "-C", root, "cluster-down")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make cluster-down: %w", err)
	}
	return nil
}

// repoRoot walks up from the working directory (a test's package
// directory) to the directory holding the Makefile and go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		_, errMake := os.Stat(filepath.Join(dir, "Makefile"))
		_, errMod := os.Stat(filepath.Join(dir, "go.mod"))
		if errMake == nil && errMod == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no Makefile and go.mod above the working directory")
		}
		dir = parent
	}
}
