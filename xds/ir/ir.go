// Package ir is the control plane's intermediate representation: what the
// edge Envoy must do, as plain Go data, before any Envoy proto exists.
//
// Policy snapshots and gate state are reduced to an Edge; the translator turns
// an Edge into Envoy resources. This package must never import protos,
// go-control-plane, client-go or anything above it (policies, gate): it is the
// bottom of the one-way layering, so it can be built by hand in tests.
package ir

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned (wrapped) by the Validate methods.
var (
	ErrNoListener    = errors.New("listener address is missing")
	ErrNoUpstream    = errors.New("upstream endpoint is missing")
	ErrBadEndpoint   = errors.New("endpoint must be host and port 1-65535")
	ErrBadPathPrefix = errors.New("path prefix must start with /build/ and carry no query or fragment")
	ErrBadStatusCode = errors.New("status code must be 400-599")
	ErrBadClass      = errors.New("unknown block class")
	ErrNoMessage     = errors.New("message is empty")
	ErrNegative      = errors.New("durations and limits must not be negative")
	ErrNotIP         = errors.New("host must be an IP address")
	ErrBadHeader     = errors.New("not a valid HTTP header value")
)

// LaunchPrefix is the path prefix of BinderHub's launch endpoint, the only
// traffic the gate and the edge rules concern themselves with.
const LaunchPrefix = "/build/"

// Class says why the edge answers a launch itself. It names the route and
// the x-binderguard-class response header, so stats tell the classes apart.
type Class string

// Classes of edge answers.
const (
	ClassBanned      Class = "banned"       // a RepoBan in Enforce mode
	ClassBreakerOpen Class = "breaker_open" // the gate's breaker for the spec is open
	ClassSaturated   Class = "saturated"    // the gate holds as many waiters as the spec may have
)

// Known reports whether c is one of the defined classes.
func (c Class) Known() bool {
	switch c {
	case ClassBanned, ClassBreakerOpen, ClassSaturated:
		return true
	}
	return false
}

// Endpoint is one host:port.
type Endpoint struct {
	Host string
	Port uint32
}

// String renders e as host:port.
func (e Endpoint) String() string { return net.JoinHostPort(e.Host, fmt.Sprint(e.Port)) }

// ParseEndpoint reads "host:port" with a port 1-65535. An empty host
// ("":9901") is defaultHost, or an error when defaultHost is empty (an
// address others dial, where a silent default would be wrong).
func ParseEndpoint(s, defaultHost string) (Endpoint, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return Endpoint{}, fmt.Errorf("address %q: port must be 1-65535", s)
	}
	if host == "" {
		if defaultHost == "" {
			return Endpoint{}, fmt.Errorf("address %q: host is missing", s)
		}
		host = defaultHost
	}
	return Endpoint{Host: host, Port: uint32(port)}, nil
}

// Validate reports whether e can be programmed.
func (e Endpoint) Validate() error {
	if e.Host == "" || e.Port == 0 || e.Port > 65535 {
		return fmt.Errorf("%w: %q", ErrBadEndpoint, e.String())
	}
	return nil
}

// Breakers are the circuit-breaker thresholds of one cluster; zero means
// Envoy's default (1024).
type Breakers struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
}

// Upstream is the BinderHub service everything is ultimately sent to.
type Upstream struct {
	Endpoint Endpoint
	// TLS makes Envoy speak TLS to the upstream, with SNI = Endpoint.Host.
	TLS      bool
	Breakers Breakers
}

// Validate reports whether u can be programmed.
func (u Upstream) Validate() error {
	if u.Endpoint.Host == "" && u.Endpoint.Port == 0 {
		return fmt.Errorf("binder: %w", ErrNoUpstream)
	}
	if err := u.Endpoint.Validate(); err != nil {
		return fmt.Errorf("binder: %w", err)
	}
	return nil
}

// Gate is the launch gate: one or more replicas spoken to over h2c.
type Gate struct {
	Endpoints []Endpoint
	// Discovered gates (the replicas of a Deployment) are pushed to Envoy
	// over EDS as they come and go, so an edit of the set keeps the
	// connections, held streams and health of the gates that stay. Their
	// Endpoints are IP addresses and may be none: launches then fall back
	// to binder, as when every gate is down.
	Discovered bool
	// HealthPath is polled by Envoy; a failing gate makes /build fall back
	// to the binder cluster.
	HealthPath string
	// HealthInterval is the active health-check period.
	HealthInterval time.Duration
	Breakers       Breakers
}

// Validate reports whether g can be programmed.
func (g Gate) Validate() error {
	if len(g.Endpoints) == 0 && !g.Discovered {
		return fmt.Errorf("gate: %w", ErrNoUpstream)
	}
	for _, e := range g.Endpoints {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("gate: %w", err)
		}
		if _, err := netip.ParseAddr(e.Host); g.Discovered && err != nil {
			return fmt.Errorf("gate: discovered endpoint %s: %w", e, ErrNotIP)
		}
	}
	if g.HealthInterval < 0 {
		return fmt.Errorf("gate health interval: %w", ErrNegative)
	}
	return nil
}

// RateLimit is a per-client-IP token bucket on launches. Zero PerSecond
// turns it off.
type RateLimit struct {
	PerSecond float64
	Burst     uint32
}

// Launch is how /build/ requests that the edge does not answer itself are
// routed.
type Launch struct {
	// MaxStreamDuration caps one launch stream: the policy's maximum build
	// time. Zero leaves streams uncapped.
	MaxStreamDuration time.Duration
	// IdleTimeout must exceed the keepalive period of BinderHub and the gate
	// (25 s) or held streams are cut.
	IdleTimeout time.Duration
	// ClientRate is the per-client-IP local rate limit.
	ClientRate RateLimit
	// RetryAfter is sent with Envoy's own rejections (overflow, rate limit,
	// no healthy upstream).
	RetryAfter time.Duration
}

// Listener is the public listener in front of BinderHub.
type Listener struct {
	Address Endpoint
	// XFFNumTrustedHops is how many proxies in front of Envoy append to
	// X-Forwarded-For; 0 means Envoy's peer is the client.
	XFFNumTrustedHops uint32
	// ConnectionIdleTimeout closes idle downstream connections.
	ConnectionIdleTimeout time.Duration
	// RequestHeadersTimeout bounds how long a client may take to send its
	// request headers (slowloris); zero means the translator's default.
	RequestHeadersTimeout time.Duration
}

// Block is one launch the edge answers itself with one SSE failed event.
type Block struct {
	// PathPrefix is a canonical launch path prefix, e.g.
	// "/build/gh/org/repo/" for every ref of a repository.
	PathPrefix string
	Class      Class
	// StatusCode goes into the failed event (403 ban, 503 breaker, 429 saturated).
	StatusCode int
	Message    string
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Source names what caused the block ("RepoBan/ns/name", a spec key), for logs.
	Source string
}

// Validate reports whether b can be programmed.
func (b Block) Validate() error {
	if !strings.HasPrefix(b.PathPrefix, LaunchPrefix) || len(b.PathPrefix) == len(LaunchPrefix) ||
		strings.ContainsAny(b.PathPrefix, "?#") {
		return fmt.Errorf("block %q: %w", b.PathPrefix, ErrBadPathPrefix)
	}
	if !b.Class.Known() {
		return fmt.Errorf("block %q: %w: %q", b.PathPrefix, ErrBadClass, b.Class)
	}
	if b.StatusCode < 400 || b.StatusCode > 599 {
		return fmt.Errorf("block %q: %w: %d", b.PathPrefix, ErrBadStatusCode, b.StatusCode)
	}
	if b.Message == "" {
		return fmt.Errorf("block %q: %w", b.PathPrefix, ErrNoMessage)
	}
	if b.RetryAfter < 0 {
		return fmt.Errorf("block %q retry-after: %w", b.PathPrefix, ErrNegative)
	}
	return nil
}

// Edge is everything the edge Envoy is programmed from.
type Edge struct {
	Listener Listener
	Binder   Upstream
	Gate     Gate
	Launch   Launch
	// Blocks are answered at the edge. Bans come first; the translator
	// keeps the first block for a prefix. A prefix carried by more than one
	// block is not an error: two RepoBans may name one repository, and a
	// hot spec may be banned, where the ban must win; it must also win
	// over a hot spec under it (a ban on /build/gh/o/r/ over a hot
	// /build/gh/o/r/HEAD), though the hot spec's prefix is the longer.
	Blocks []Block
	// CORSAllowOrigin is the site's BinderHub cors_allow_origin. When set,
	// every answer the edge gives a launch itself carries it as
	// Access-Control-Allow-Origin, with BinderHub's
	// Access-Control-Allow-Headers: cache-control, as BinderHub's own
	// answers do (base.py BaseHandler.set_default_headers); without it, a
	// page on another site cannot read a ban or a 429. Empty: no header.
	CORSAllowOrigin string
}

// Validate checks the parts without which nothing can be programmed. Blocks
// are not checked here: the translator skips a bad block and keeps going.
func (e *Edge) Validate() error {
	var errs []error
	if e.Listener.Address.Port == 0 && e.Listener.Address.Host == "" {
		errs = append(errs, ErrNoListener)
	} else if err := e.Listener.Address.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("listener: %w", err))
	}
	errs = append(errs, e.Binder.Validate(), e.Gate.Validate())
	if e.Launch.MaxStreamDuration < 0 || e.Launch.IdleTimeout < 0 || e.Launch.RetryAfter < 0 ||
		e.Launch.ClientRate.PerSecond < 0 || e.Listener.ConnectionIdleTimeout < 0 || e.Listener.RequestHeadersTimeout < 0 {
		errs = append(errs, fmt.Errorf("launch: %w", ErrNegative))
	}
	if err := ValidHeaderValue(e.CORSAllowOrigin); err != nil {
		errs = append(errs, fmt.Errorf("cors allow origin: %w", err))
	}
	return errors.Join(errs...)
}

// ValidHeaderValue reports whether v can be sent as an HTTP header value
// as it is: visible ASCII and inner spaces or tabs only (RFC 9110
// field-value, without the obsolete non-ASCII octets), so it can neither
// split a header nor be trimmed into something else.
func ValidHeaderValue(v string) error {
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%w: %q has leading or trailing white space", ErrBadHeader, v)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return fmt.Errorf("%w: %q has byte %#02x at %d", ErrBadHeader, v, c, i)
		}
	}
	return nil
}
