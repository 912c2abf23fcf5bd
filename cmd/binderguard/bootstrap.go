package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/binderguard/binderguard/xds/bootstrap"
	"github.com/binderguard/binderguard/xds/ir"
)

// runBootstrap prints the Envoy bootstrap YAML for a sidecar or a local
// Envoy, or writes it to --output: the init container runs it without a
// shell (the image holds only the binary).
func runBootstrap(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	nodeID := fs.String("node-id", "", "Envoy node id (required)")
	cluster := fs.String("node-cluster", "binderguard", "Envoy node cluster")
	xds := fs.String("xds", "127.0.0.1:18000", "binderguard xDS server address")
	admin := fs.String("admin", "127.0.0.1:9901", "Envoy admin address")
	stats := fs.String("stats", "", "address of a listener serving only /stats/prometheus (empty: none)")
	delta := fs.Bool("delta", true, "use incremental (delta) xDS; with --delta=false, state of the world re-sends every ban slot on each ban edit")
	maxConns := fs.Int64("max-connections", bootstrap.DefaultMaxConnections, "overload manager cap on downstream connections")
	output := fs.String("output", "", "write the bootstrap to this file, atomically, instead of stdout (the directory must exist)")
	if err := parseFlags(fs, args, stdout, nil); err != nil {
		return err
	}
	if *nodeID == "" {
		return usageErr("--node-id is required")
	}
	o := bootstrap.Config{NodeID: *nodeID, Cluster: *cluster, Delta: *delta, MaxConnections: *maxConns}
	var err error
	if o.XDS, err = ir.ParseEndpoint(*xds, "127.0.0.1"); err != nil {
		return usageErr("--xds: %v", err)
	}
	if o.Admin, err = ir.ParseEndpoint(*admin, "127.0.0.1"); err != nil {
		return usageErr("--admin: %v", err)
	}
	if *stats != "" {
		if o.Stats, err = ir.ParseEndpoint(*stats, "127.0.0.1"); err != nil {
			return usageErr("--stats: %v", err)
		}
	}
	y, err := bootstrap.YAML(o)
	if err != nil {
		return fmt.Errorf("building the bootstrap: %w", err)
	}
	if *output == "" {
		_, err = stdout.Write(y)
		return err
	}
	return writeFileAtomic(*output, y)
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so Envoy never reads a partial bootstrap. The
// file is world-readable: Envoy runs as another user than the init
// container.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("writing the bootstrap to %s: directory %s: %w", path, dir, err)
	} else if !st.IsDir() {
		return fmt.Errorf("writing the bootstrap to %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the bootstrap to %s (is the directory writable?): %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("writing the bootstrap to %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("making the bootstrap %s readable: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing the bootstrap to %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the bootstrap to %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("moving the bootstrap into place at %s: %w", path, err)
	}
	return nil
}
