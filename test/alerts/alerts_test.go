// Package alerts tests the Prometheus alert rules and Alertmanager routing in
// manifests/alerts with the real promtool and amtool, so a rule that stops
// firing on the signals of the 2018-07-30 outage fails the build.
//
// It only reads manifests/alerts, and it must never skip when promtool or
// amtool is missing: it fails and names `make tools`.
package alerts

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const dir = "../../manifests/alerts"

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: run `make tools` (Debian packages prometheus and prometheus-alertmanager)", name)
	}
	return p
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestAlertRulesFireOnTheIncidentAndStayQuietWhenHealthy(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, promtool, "check", "rules", "binderguard.rules.yaml")
	run(t, promtool, "test", "rules", "binderguard.rules.test.yaml")
}

func TestAlertmanagerRoutesPagesAndInfoToTheTeam(t *testing.T) {
	amtool := tool(t, "amtool")
	run(t, amtool, "check-config", "alertmanager.yaml")
	routes := map[string]struct {
		labels []string
		want   string
	}{
		"a page goes to the pager":      {[]string{"severity=page", "alertname=BinderLaunchesFailing"}, "team-pager"},
		"a held storm goes to the chat": {[]string{"severity=info", "alertname=BinderguardStormHeld"}, "team-chat"},
		"a warning goes to the chat":    {[]string{"severity=warning", "alertname=BinderguardShedding"}, "team-chat"},
	}
	for name, tc := range routes {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=alertmanager.yaml"}, tc.labels...)
			got := strings.TrimSpace(run(t, amtool, args...))
			if got != tc.want {
				t.Fatalf("routed to %q, want %q", got, tc.want)
			}
		})
	}
}
