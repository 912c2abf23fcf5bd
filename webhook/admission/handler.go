package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	"github.com/binderguard/binderguard/webhook/evaluate"
)

// Paths the two webhooks are served on; the manifests in manifests/webhook
// name the same paths.
const (
	MutatePath   = "/mutate-pods"
	ValidatePath = "/validate-pods"
)

// PolicySource returns the policies to evaluate against, read from the
// in-memory snapshot; ok is false until the first snapshot is loaded.
type PolicySource func(now time.Time) (p evaluate.Policies, ok bool)

// Config is what the handlers need.
type Config struct {
	// Policies gives the current policy view (required).
	Policies PolicySource
	// Recorder records an Event per Audit-mode finding; nil records none.
	Recorder events.EventRecorder
	// Registerer receives the webhook metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger is the component logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnRefused, if set, is called once per policy whose Enforce-mode
	// finding made the validating webhook deny a pod (not for dry runs):
	// RepoBan status counts them. It must not block.
	OnRefused func(policy string)
}

// Hooks are the mutating and validating pod handlers.
type Hooks struct {
	Mutating   cradmission.Handler
	Validating cradmission.Handler
}

// New builds the two handlers.
func New(cfg Config) (*Hooks, error) {
	if cfg.Policies == nil {
		return nil, errors.New("admission: Config.Policies is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering webhook metrics: %w", err)
	}
	c := &core{cfg: cfg, m: m}
	return &Hooks{
		Mutating:   &mutating{c},
		Validating: &validating{c},
	}, nil
}

type core struct {
	cfg Config
	m   *metrics
}

// checkKind refuses a review that is not about a pod: an AdmissionReview
// without a request, or a webhook configuration pointing other resources
// here.
func checkKind(req cradmission.Request) *cradmission.Response {
	if req.Kind.Kind == "" {
		r := cradmission.Errored(http.StatusBadRequest, errors.New("binderguard admits only core/v1 Pods: the AdmissionReview carries no request kind"))
		return &r
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		r := cradmission.Errored(http.StatusBadRequest, fmt.Errorf("binderguard admits only core/v1 Pods, got %s", req.Kind.String()))
		return &r
	}
	return nil
}

// pod decodes and checks the request's object; a non-nil Response is the
// error answer to send instead.
func (c *core) pod(req cradmission.Request) (*corev1.Pod, *cradmission.Response) {
	if len(req.Object.Raw) == 0 {
		r := cradmission.Errored(http.StatusBadRequest, errors.New("admission request carries no object"))
		return nil, &r
	}
	// Decoded straight into the typed pod (case-sensitive, as the API
	// server does): the generic decoder first sniffs the kind with a second
	// full parse, a third of a review's cost, for a kind checked above.
	pod := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, pod); err != nil {
		r := cradmission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err))
		return nil, &r
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if pod.Name == "" {
		pod.Name = req.Name
	}
	return pod, nil
}

func (c *core) policies() (evaluate.Policies, *cradmission.Response) {
	p, ok := c.cfg.Policies(c.cfg.Now())
	if !ok {
		r := cradmission.Errored(http.StatusServiceUnavailable, errors.New("binderguard has not loaded its policies yet"))
		return nil, &r
	}
	return p, nil
}

type mutating struct{ *core }

// Handle patches build pods into their LaunchPolicy's limits. It never
// denies: without policies yet it allows the pod unchanged (the validating
// webhook then judges the final state).
func (h *mutating) Handle(ctx context.Context, req cradmission.Request) cradmission.Response {
	start := time.Now()
	resp, kind := h.handle(req)
	h.m.observe(MutatePath, kind, resp, time.Since(start))
	return resp
}

func (h *mutating) handle(req cradmission.Request) (cradmission.Response, evaluate.Kind) {
	if bad := checkKind(req); bad != nil {
		return *bad, ""
	}
	if req.Operation != "CREATE" {
		return cradmission.Allowed("binderguard mutates pods on create only"), ""
	}
	pod, bad := h.pod(req)
	if bad != nil {
		return *bad, ""
	}
	pols, bad := h.policies()
	if bad != nil {
		return cradmission.Allowed("binderguard has no policies yet: pod not mutated"), evaluate.KindOf(pod)
	}
	v := evaluate.Mutate(pod, pols)
	if len(v.Patch) == 0 {
		return cradmission.Allowed(v.Reason), v.Kind
	}
	return cradmission.Patched(v.Reason, v.Patch...), v.Kind
}

type validating struct{ *core }

// Handle denies pods of banned repositories and build pods outside their
// limits, warns for Warn-mode policies and records Audit-mode ones.
func (h *validating) Handle(ctx context.Context, req cradmission.Request) cradmission.Response {
	start := time.Now()
	resp, kind := h.handle(req)
	h.m.observe(ValidatePath, kind, resp, time.Since(start))
	return resp
}

func (h *validating) handle(req cradmission.Request) (cradmission.Response, evaluate.Kind) {
	if bad := checkKind(req); bad != nil {
		return *bad, ""
	}
	var check func(*corev1.Pod, evaluate.Policies) evaluate.Verdict
	switch {
	case req.Operation == "CREATE" && req.SubResource == "":
		check = evaluate.Validate
	case req.Operation == "UPDATE" && req.SubResource == "resize":
		check = evaluate.ValidateResize
	default:
		return cradmission.Allowed("binderguard checks pod create and resize only"), ""
	}
	pod, bad := h.pod(req)
	if bad != nil {
		return *bad, ""
	}
	pols, bad := h.policies()
	if bad != nil {
		return *bad, evaluate.KindOf(pod)
	}
	v := check(pod, pols)
	h.record(req, pod, v)
	if !v.Allowed {
		h.refused(req, v)
		return cradmission.Denied(v.Reason).WithWarnings(v.Warnings...), v.Kind
	}
	return cradmission.Allowed(v.Reason).WithWarnings(v.Warnings...), v.Kind
}

// record counts every finding and, outside dry runs (the webhook declares
// sideEffects NoneOnDryRun), leaves an Event for each Audit-mode one.
func (h *validating) record(req cradmission.Request, pod *corev1.Pod, v evaluate.Verdict) {
	dry := req.DryRun != nil && *req.DryRun
	for _, f := range v.Findings {
		h.m.findings.WithLabelValues(string(f.Mode), f.Policy, f.Rule).Inc()
		if f.Mode != evaluate.ModeAudit {
			continue
		}
		h.cfg.Logger.Info("audit finding", "namespace", pod.Namespace, "pod", podName(pod), "policy", f.Policy, "rule", f.Rule, "repo", f.Repo, "dry_run", dry)
		if h.cfg.Recorder == nil || dry {
			continue
		}
		regarding := &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: podName(pod)}
		h.cfg.Recorder.Eventf(regarding, PolicyRef(f.Policy), corev1.EventTypeWarning, "PolicyAudit", "Admit",
			"%s (Audit mode: allowed)", evaluate.Truncate(f.Message, 900))
	}
}

// refused reports each policy whose Enforce-mode finding denied the pod,
// once per pod, outside dry runs.
func (h *validating) refused(req cradmission.Request, v evaluate.Verdict) {
	if h.cfg.OnRefused == nil || (req.DryRun != nil && *req.DryRun) {
		return
	}
	seen := map[string]bool{}
	for _, f := range v.Findings {
		if f.Mode == evaluate.ModeEnforce && !seen[f.Policy] {
			seen[f.Policy] = true
			h.cfg.OnRefused(f.Policy)
		}
	}
}

// PolicyRef turns "RepoBan/<ns>/<name>" or "LaunchPolicy/<ns>/<name>" into
// an object reference for Events; other policy names (built-in defaults,
// file policies without a namespace) give nil.
func PolicyRef(policy string) *corev1.ObjectReference {
	parts := strings.Split(policy, "/")
	if len(parts) != 3 || (parts[0] != "RepoBan" && parts[0] != "LaunchPolicy") || parts[1] == "" || parts[2] == "" {
		return nil
	}
	return &corev1.ObjectReference{APIVersion: "binderguard.io/v1alpha1", Kind: parts[0], Namespace: parts[1], Name: parts[2]}
}

// podName is the pod's name, or its generateName prefix when the API
// server has not named it yet.
func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName
}
