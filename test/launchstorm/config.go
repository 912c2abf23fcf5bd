package launchstorm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// DefaultTimeout bounds one client's launch when Config.Timeout is zero.
// BinderHub's own Launcher.launch_timeout is 600 s and builds may take
// longer, so the default is generous.
const DefaultTimeout = 15 * time.Minute

// RetryInterval is how long the JS client's source waits before retrying
// after an HTTP 429 or 5xx answer (fetch-event-source's
// DefaultRetryInterval); the pinned 0.5.0 never gets there.
const RetryInterval = time.Second

// Config says what to storm.
type Config struct {
	// URL is the base URL of the BinderHub (or of the proxy in front of
	// it), e.g. "http://127.0.0.1:8080" or "http://host/binder/".
	URL string
	// Spec is "<provider>/<spec>", the path after /build/, still
	// percent-encoded, e.g. "gh/binder-examples/requirements/HEAD".
	Spec string
	// Clients is how many concurrent launches of Spec to open (>= 1).
	Clients int
	// Ramp spreads the starts of the clients evenly over this duration;
	// zero starts them all at once.
	Ramp time.Duration
	// Timeout bounds each client's launch; zero means DefaultTimeout.
	Timeout time.Duration
	// Retry retries every second (RetryInterval) on HTTP 429 and 5xx
	// answers, as the JS client's source means to; without it such an
	// answer ends the client as failed, with the HTTP status as its status
	// code (counted in Summary.Non200). Note: the pinned npm 0.5.0 client
	// does not actually retry (its retry branch is dead code; see
	// test/compat), so Retry models clients that do, such as a release
	// whose retry works.
	Retry bool
	// Mix are background launches of other repositories run at the same
	// time; they are reported in Summary.Mix.
	Mix []MixEntry
	// Headers, when set, gives extra request headers for client i (a
	// "Host" entry sets the request's Host). Main clients are numbered
	// 0..Clients-1, mix clients from Clients on. Accept is always
	// text/event-stream, as the JS client sends.
	Headers func(i int) http.Header
	// StatsURL, when set, is fetched once at the end (the simulator's
	// /_sim/stats) and its JSON included in Summary.SimStats.
	StatsURL string
	// Tracker, when set, is updated live with each client's phase, for
	// progress displays.
	Tracker *Tracker
	// HTTPClient overrides the client built for the storm (whose transport
	// allows as many concurrent streams as there are clients).
	HTTPClient *http.Client
}

// MixEntry is one group of background launches.
type MixEntry struct {
	// Spec is "<provider>/<spec>" like Config.Spec.
	Spec string `json:"spec"`
	// Clients is how many launches of Spec to open.
	Clients int `json:"clients"`
	// Interval is the time between two starts; it wins over Ramp.
	Interval Duration `json:"interval,omitempty"`
	// Ramp spreads the starts evenly over this duration.
	Ramp Duration `json:"ramp,omitempty"`
	// Delay is waited before the first start.
	Delay Duration `json:"delay,omitempty"`
}

// Duration is a time.Duration read from JSON/YAML as a Go duration string
// ("500ms", "2s") or a number of seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return fmt.Errorf("reading a duration string: %w", err)
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("parsing duration %q: %w", str, err)
		}
		*d = Duration(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("parsing duration %s: want a string like \"2s\" or seconds", s)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// ParseMix reads a YAML or JSON list of MixEntry; unknown fields are errors.
func ParseMix(data []byte) ([]MixEntry, error) {
	var mix []MixEntry
	if err := yaml.UnmarshalStrict(data, &mix); err != nil {
		return nil, fmt.Errorf("reading mix: %w", err)
	}
	for i, m := range mix {
		if err := CheckSpec(m.Spec); err != nil {
			return nil, fmt.Errorf("mix entry %d: %w", i, err)
		}
		if m.Clients < 1 {
			return nil, fmt.Errorf("mix entry %d (%s): clients must be at least 1", i, m.Spec)
		}
		if m.Interval < 0 || m.Ramp < 0 || m.Delay < 0 {
			return nil, fmt.Errorf("mix entry %d (%s): negative duration", i, m.Spec)
		}
	}
	return mix, nil
}

// LoadMix reads a mix file (see ParseMix).
func LoadMix(path string) ([]MixEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mix file: %w", err)
	}
	mix, err := ParseMix(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mix, nil
}

// providers are BinderHub's repository provider prefixes.
var providers = map[string]bool{
	"gh": true, "gist": true, "git": true, "gl": true, "zenodo": true,
	"figshare": true, "hydroshare": true, "dataverse": true, "ckan": true,
}

// CheckSpec reports whether spec looks like "<provider>/<spec>" with a
// provider BinderHub knows. It checks only the shape a URL path needs; the
// server decides whether the repository exists.
func CheckSpec(spec string) error {
	provider, rest, ok := strings.Cut(spec, "/")
	if spec == "" {
		return errors.New("spec is empty: want <provider>/<spec>, e.g. gh/org/repo/HEAD")
	}
	if !ok || strings.Trim(rest, "/") == "" {
		return fmt.Errorf("malformed spec %q: want <provider>/<spec>, e.g. gh/org/repo/HEAD", spec)
	}
	if !providers[provider] {
		return fmt.Errorf("malformed spec %q: unknown provider %q", spec, provider)
	}
	if strings.ContainsAny(spec, " \t\r\n?#") {
		return fmt.Errorf("malformed spec %q: spaces, '?' and '#' must be percent-encoded", spec)
	}
	if _, err := url.Parse("/" + spec); err != nil {
		return fmt.Errorf("malformed spec %q: %w", spec, err)
	}
	return nil
}

// checkURL validates the base URL.
func checkURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("url is empty: want the BinderHub base URL, e.g. http://127.0.0.1:8080")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("malformed url %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("malformed url %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("malformed url %q: the base url takes no query or fragment", raw)
	}
	return u, nil
}

// buildURL joins the base URL and a spec the way the JS client does
// (new URL(spec, base + "/")): the spec's percent-encoding is kept.
func buildURL(base *url.URL, spec string) string {
	return strings.TrimRight(base.String(), "/") + "/build/" + spec
}

func (o *Config) validate() (*url.URL, error) {
	u, err := checkURL(o.URL)
	if err != nil {
		return nil, err
	}
	if err := CheckSpec(o.Spec); err != nil {
		return nil, err
	}
	if o.Clients < 1 {
		return nil, fmt.Errorf("clients must be at least 1, got %d", o.Clients)
	}
	if o.Ramp < 0 || o.Timeout < 0 {
		return nil, errors.New("ramp and timeout must not be negative")
	}
	for i, m := range o.Mix {
		if err := CheckSpec(m.Spec); err != nil {
			return nil, fmt.Errorf("mix entry %d: %w", i, err)
		}
		if m.Clients < 1 {
			return nil, fmt.Errorf("mix entry %d (%s): clients must be at least 1", i, m.Spec)
		}
	}
	if o.StatsURL != "" {
		if _, err := checkURL(o.StatsURL); err != nil {
			return nil, fmt.Errorf("stats url: %w", err)
		}
	}
	return u, nil
}
