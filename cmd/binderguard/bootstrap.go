package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/binderguard/binderguard/xds/bootstrap"
)

// runBootstrap prints the Envoy bootstrap YAML for a sidecar or a local Envoy,
// or writes it to --output: the image has no shell to redirect with.
func runBootstrap(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	nodeID := fs.String("node-id", "", "Envoy node id (required)")
	cluster := fs.String("node-cluster", "binderguard", "Envoy node cluster")
	xds := fs.String("xds", "127.0.0.1:18000", "binderguard xDS server address")
	admin := fs.String("admin", "127.0.0.1:9901", "Envoy admin address")
	stats := fs.String("stats", "", "address of a listener serving only /stats/prometheus (empty: none)")
	delta := fs.Bool("delta", false, "use incremental (delta) xDS instead of state of the world")
	maxConns := fs.Int64("max-connections", bootstrap.DefaultMaxConnections, "overload manager cap on downstream connections")
	output := fs.String("output", "", "write the bootstrap to this file (mode 0644) instead of standard output")
	if err := parseFlags(fs, args, stdout, nil); err != nil {
		return err
	}
	if *nodeID == "" {
		return usageErr("--node-id is required")
	}
	o := bootstrap.Options{NodeID: *nodeID, Cluster: *cluster, Delta: *delta, MaxConnections: *maxConns}
	var err error
	if o.XDS, err = bootstrap.ParseAddr(*xds); err != nil {
		return usageErr("--xds: %v", err)
	}
	if o.Admin, err = bootstrap.ParseAddr(*admin); err != nil {
		return usageErr("--admin: %v", err)
	}
	if *stats != "" {
		if o.Stats, err = bootstrap.ParseAddr(*stats); err != nil {
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
	if err := os.WriteFile(*output, y, 0o644); err != nil {
		return fmt.Errorf("writing the bootstrap: %w", err)
	}
	return nil
}
