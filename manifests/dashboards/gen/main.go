// Command gen writes binderguard's Grafana dashboard
// (manifests/dashboards/binderguard.json) from Go code with the Grafana
// foundation SDK; `make dashboards` runs it and a test fails when the
// committed JSON drifts from what it generates.
//
// It is a main package on purpose: Go refuses to import a main package, so
// the SDK and this generator can never end up in binderguard's binaries.
// It must never read a live Prometheus or Grafana: the dashboard is a pure
// function of this code.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("o", "manifests/dashboards/binderguard.json", "file to write the dashboard JSON to")
	flag.Parse()
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(path string) error {
	b, err := dashboardJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing the dashboard: %w", err)
	}
	return nil
}
