package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/binderguard/binderguard/policies/match"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/policies/source/file"
	"github.com/binderguard/binderguard/policies/spec"
)

const policyUsage = `usage:
  binderguard policy test --policies DIR (--spec SPEC | -f POD.yaml) [--now RFC3339] [--namespace NS]
      evaluate a launch spec ("gh/org/repo/ref", "/build/...", "v2/...") or a pod
      manifest against the policies in DIR; prints a JSON verdict
      {"allowed": bool, "reason": "...", "policy": "...", "patch": [...]}
  binderguard policy import --binderhub-config values.yaml [--namespace NS] [--name NAME]
      print RepoBan YAML for the banned_specs in BinderHub helm values
`

// runPolicy dispatches the offline policy tools.
func runPolicy(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErr("a subcommand is required: test or import\n%s", policyUsage)
	}
	switch args[0] {
	case "test":
		return runPolicyTest(ctx, args[1:], stdout)
	case "import":
		return runPolicyImport(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	return usageErr("unknown subcommand %q: use test or import", args[0])
}

// verdict is what `policy test` prints.
type verdict struct {
	Allowed bool        `json:"allowed"`
	Reason  string      `json:"reason"`
	Policy  string      `json:"policy"`
	Patch   []any       `json:"patch"`
	Spec    *specView   `json:"spec,omitempty"`
	Ban     *banView    `json:"ban,omitempty"`
	Launch  *launchView `json:"launch,omitempty"`
}

// The views spell the verdict's parts the way the CRDs do (camelCase,
// durations as "30m"), so what `policy test` prints reads like the policy.
type specView struct {
	Provider string    `json:"provider"`
	Repo     spec.Repo `json:"repo"`
	Ref      string    `json:"ref,omitempty"`
	BuildKey string    `json:"buildKey"`
}

type banView struct {
	Policy  string     `json:"policy"`
	Rule    string     `json:"rule"`
	Message string     `json:"message"`
	Mode    match.Mode `json:"mode"`
	Repo    spec.Repo  `json:"repo"`
}

type launchView struct {
	Policy   string     `json:"policy"`
	Mode     match.Mode `json:"mode"`
	Collapse struct {
		Enabled      bool    `json:"enabled"`
		MaxWaiters   int     `json:"maxWaiters"`
		HoldTimeout  string  `json:"holdTimeout"`
		ReleaseRate  float64 `json:"releaseRate"`
		ReleaseBurst int     `json:"releaseBurst"`
	} `json:"collapse"`
	Shed struct {
		MaxConcurrentPerSpec int     `json:"maxConcurrentPerSpec"`
		ClientIPRate         float64 `json:"clientIPRate"`
		ClientIPBurst        int     `json:"clientIPBurst"`
	} `json:"shed"`
	Breaker struct {
		ConsecutiveFailures int    `json:"consecutiveFailures"`
		OpenDuration        string `json:"openDuration"`
		MaxBuildDuration    string `json:"maxBuildDuration"`
	} `json:"breaker"`
	Build struct {
		Resources             corev1.ResourceRequirements `json:"resources"`
		ActiveDeadlineSeconds *int64                      `json:"activeDeadlineSeconds,omitempty"`
	} `json:"build"`
	StaleWhileBuilding struct {
		Enabled bool   `json:"enabled"`
		MaxAge  string `json:"maxAge"`
	} `json:"staleWhileBuilding"`
}

func newLaunchView(l snapshot.Launch) *launchView {
	v := &launchView{Policy: l.Policy, Mode: l.Mode}
	v.Collapse.Enabled, v.Collapse.MaxWaiters, v.Collapse.HoldTimeout = l.Collapse.Enabled, l.Collapse.MaxWaiters, l.Collapse.HoldTimeout.String()
	v.Collapse.ReleaseRate, v.Collapse.ReleaseBurst = l.Collapse.ReleaseRate, l.Collapse.ReleaseBurst
	v.Shed.MaxConcurrentPerSpec, v.Shed.ClientIPRate, v.Shed.ClientIPBurst = l.Shed.MaxConcurrent, l.Shed.ClientIPRate, l.Shed.ClientIPBurst
	v.Breaker.ConsecutiveFailures = l.Breaker.ConsecutiveFailures
	v.Breaker.OpenDuration, v.Breaker.MaxBuildDuration = l.Breaker.OpenDuration.String(), l.Breaker.MaxBuildDuration.String()
	v.Build.Resources, v.Build.ActiveDeadlineSeconds = l.Build.Resources, l.Build.ActiveDeadlineSeconds
	v.StaleWhileBuilding.Enabled, v.StaleWhileBuilding.MaxAge = l.Stale.Enabled, l.Stale.MaxAge.String()
	return v
}

func runPolicyTest(_ context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	dir := fs.String("policies", "", "directory of RepoBan and LaunchPolicy YAML files (required)")
	specArg := fs.String("spec", "", `launch spec: "gh/org/repo/ref", "/build/gh/...", or "v2/gh/..."`)
	podFile := fs.String("f", "", "pod manifest (YAML or JSON) to evaluate as the admission webhook would")
	nowArg := fs.String("now", "", "evaluate at this RFC 3339 time instead of now (ban expiry)")
	ns := fs.String("namespace", "default", "namespace for policies that set none")
	if err := parseFlags(fs, args, stdout, printPolicyUsage); err != nil {
		return err
	}
	if *dir == "" {
		return usageErr("--policies DIR is required")
	}
	if (*specArg == "") == (*podFile == "") {
		return usageErr("give exactly one of --spec SPEC or -f POD.yaml")
	}
	now := time.Now()
	if *nowArg != "" {
		t, err := time.Parse(time.RFC3339, *nowArg)
		if err != nil {
			return usageErr("--now %q is not an RFC 3339 time", *nowArg)
		}
		now = t
	}
	snap, err := loadSnapshot(*dir, *ns)
	if err != nil {
		return err
	}
	var out any
	if *podFile != "" {
		data, err := os.ReadFile(*podFile)
		if err != nil {
			return usageErr("-f: %v", err)
		}
		if out, err = evaluatePod(snap, data, now); err != nil {
			return err
		}
	} else {
		sp, err := parseSpecArg(*specArg)
		if err != nil {
			return usageErr("--spec: %v", err)
		}
		out = evaluateSpec(snap, sp, now)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// loadSnapshot reads a policy directory; any invalid file is bad input,
// reported as "file:line: reason" on one line.
func loadSnapshot(dir, ns string) (*snapshot.Snapshot, error) {
	p, problems, err := file.LoadDir(dir, ns)
	if err != nil {
		return nil, usageErr("--policies: %v", err)
	}
	if len(problems) > 0 {
		msg := problems[0].Error()
		if len(problems) > 1 {
			msg += fmt.Sprintf(" (and %d more problems)", len(problems)-1)
		}
		return nil, usageErr("invalid policy file: %s", msg)
	}
	snap, errs := snapshot.New(p.Bans, p.LaunchPolicies)
	if len(errs) > 0 { // LoadDir validated each object; kept as a guard
		return nil, usageErr("invalid policy: %v", errs[0])
	}
	return snap, nil
}

func parseSpecArg(s string) (spec.Spec, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "v2/") || strings.HasPrefix(t, "/v2/") {
		return spec.ParseRequest(t)
	}
	return spec.Parse(t)
}

// evaluateSpec is the gate's decision for one launch: a ban in Enforce
// mode refuses it; Warn and Audit bans allow it and say so.
func evaluateSpec(snap *snapshot.Snapshot, sp spec.Spec, now time.Time) verdict {
	l := snap.Launch(sp)
	v := verdict{Allowed: true, Patch: []any{}, Launch: newLaunchView(l)}
	v.Spec = &specView{sp.Provider, sp.Repo, sp.Ref, sp.BuildKey()}
	if hit, ok := snap.Ban(sp, now); ok {
		v.Ban, v.Policy = &banView{hit.Policy, hit.Rule, hit.Message, hit.Mode, hit.Repo}, hit.Policy
		if hit.Mode == match.ModeEnforce {
			v.Allowed, v.Reason = false, hit.Message
			return v
		}
		v.Reason = fmt.Sprintf("allowed: %s matches (rule %s) in %s mode: %s", hit.Policy, hit.Rule, hit.Mode, hit.Message)
		return v
	}
	v.Policy = l.Policy
	v.Reason = fmt.Sprintf("allowed: no ban applies; launch policy %s (%s)", l.Policy, l.Mode)
	return v
}
