package ir

import (
	"errors"
	"testing"
	"time"
)

func TestBlockValidate(t *testing.T) {
	good := Block{PathPrefix: "/build/gh/org/repo/", Class: ClassBanned, StatusCode: 403, Message: "banned"}
	tests := map[string]struct {
		change func(b *Block)
		want   error
	}{
		"a ban on a repository prefix is valid":       {change: func(*Block) {}},
		"a prefix outside /build/ is refused":         {change: func(b *Block) { b.PathPrefix = "/versions" }, want: ErrBadPathPrefix},
		"the bare launch prefix would block all":      {change: func(b *Block) { b.PathPrefix = "/build/" }, want: ErrBadPathPrefix},
		"a prefix with a query is refused":            {change: func(b *Block) { b.PathPrefix = "/build/gh/a/b?x=1" }, want: ErrBadPathPrefix},
		"an unknown class is refused":                 {change: func(b *Block) { b.Class = "mystery" }, want: ErrBadClass},
		"a success status code is refused":            {change: func(b *Block) { b.StatusCode = 200 }, want: ErrBadStatusCode},
		"an empty message is refused":                 {change: func(b *Block) { b.Message = "" }, want: ErrNoMessage},
		"a negative retry-after is refused":           {change: func(b *Block) { b.RetryAfter = -time.Second }, want: ErrNegative},
		"a breaker block with retry-after is valid":   {change: func(b *Block) { b.Class, b.StatusCode, b.RetryAfter = ClassBreakerOpen, 503, time.Minute }},
		"a saturated block with a 429 code is valid":  {change: func(b *Block) { b.Class, b.StatusCode = ClassSaturated, 429 }},
		"a percent-encoded git prefix is valid":       {change: func(b *Block) { b.PathPrefix = "/build/git/https%3A%2F%2Fgithub.com%2Fa%2Fb/" }},
		"a status code above 599 is refused":          {change: func(b *Block) { b.StatusCode = 600 }, want: ErrBadStatusCode},
		"a prefix with a fragment marker is refused":  {change: func(b *Block) { b.PathPrefix = "/build/gh/a/b#c" }, want: ErrBadPathPrefix},
		"a prefix without the leading slash is wrong": {change: func(b *Block) { b.PathPrefix = "build/gh/a/b" }, want: ErrBadPathPrefix},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := good
			tc.change(&b)
			err := b.Validate()
			if tc.want == nil && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEdgeValidate(t *testing.T) {
	good := func() Edge {
		return Edge{
			Listener: Listener{Address: Endpoint{Host: "0.0.0.0", Port: 8080}},
			Binder:   Upstream{Endpoint: Endpoint{Host: "127.0.0.1", Port: 8585}},
			Gate:     Gate{Endpoints: []Endpoint{{Host: "127.0.0.1", Port: 8081}}},
		}
	}
	tests := map[string]struct {
		change func(e *Edge)
		want   error
	}{
		"listener, binder and gate are enough":  {change: func(*Edge) {}},
		"no listener address is refused":        {change: func(e *Edge) { e.Listener.Address = Endpoint{} }, want: ErrNoListener},
		"a listener without a port is refused":  {change: func(e *Edge) { e.Listener.Address.Port = 0 }, want: ErrBadEndpoint},
		"no binder is refused":                  {change: func(e *Edge) { e.Binder.Endpoint = Endpoint{} }, want: ErrNoUpstream},
		"no gate replica is refused":            {change: func(e *Edge) { e.Gate.Endpoints = nil }, want: ErrNoUpstream},
		"a gate replica with port 0 is refused": {change: func(e *Edge) { e.Gate.Endpoints[0].Port = 0 }, want: ErrBadEndpoint},
		"discovered gates may be none yet":      {change: func(e *Edge) { e.Gate.Discovered, e.Gate.Endpoints = true, nil }},
		"a discovered gate is an IP address": {change: func(e *Edge) {
			e.Gate.Discovered, e.Gate.Endpoints = true, []Endpoint{{Host: "binderguard-gate.ns.svc", Port: 8081}}
		}, want: ErrNotIP},
		"a negative stream duration is refused":       {change: func(e *Edge) { e.Launch.MaxStreamDuration = -1 }, want: ErrNegative},
		"a negative client rate is refused":           {change: func(e *Edge) { e.Launch.ClientRate.PerSecond = -1 }, want: ErrNegative},
		"bad blocks are left to the translator":       {change: func(e *Edge) { e.Blocks = []Block{{PathPrefix: "/x"}} }},
		"a port above 65535 is refused":               {change: func(e *Edge) { e.Binder.Endpoint.Port = 70000 }, want: ErrBadEndpoint},
		"a negative health interval is refused":       {change: func(e *Edge) { e.Gate.HealthInterval = -time.Second }, want: ErrNegative},
		"two problems are both reported":              {change: func(e *Edge) { e.Gate.Endpoints = nil; e.Launch.RetryAfter = -1 }, want: ErrNegative},
		"a zero launch config means Envoy's defaults": {change: func(e *Edge) { e.Launch = Launch{} }},
		"any origin may be allowed":                   {change: func(e *Edge) { e.CORSAllowOrigin = "*" }},
		"one origin may be allowed":                   {change: func(e *Edge) { e.CORSAllowOrigin = "https://book.example.org" }},
		"an origin that would split a header is refused": {
			change: func(e *Edge) { e.CORSAllowOrigin = "*\r\nSet-Cookie: a=b" }, want: ErrBadHeader},
		"an origin with a trailing space is refused": {change: func(e *Edge) { e.CORSAllowOrigin = "* " }, want: ErrBadHeader},
		"a non-ASCII origin is refused":              {change: func(e *Edge) { e.CORSAllowOrigin = "https://bücher.example" }, want: ErrBadHeader},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := good()
			tc.change(&e)
			err := e.Validate()
			if tc.want == nil && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := map[string]struct {
		in, defaultHost string
		want            Endpoint
		wantErr         bool
	}{
		"host and port":                      {in: "10.0.0.1:18000", want: Endpoint{"10.0.0.1", 18000}},
		"a bare port takes the default host": {in: ":9901", defaultHost: "127.0.0.1", want: Endpoint{"127.0.0.1", 9901}},
		"a bare port without a default":      {in: ":9901", wantErr: true},
		"a name is kept":                     {in: "binderguard.ns.svc:18000", want: Endpoint{"binderguard.ns.svc", 18000}},
		"an IPv6 address in brackets":        {in: "[::1]:8080", want: Endpoint{"::1", 8080}},
		"no port is refused":                 {in: "localhost", wantErr: true},
		"port zero is refused":               {in: "127.0.0.1:0", wantErr: true},
		"a port out of range":                {in: "127.0.0.1:70000", wantErr: true},
		"a host given wins over the default": {in: "0.0.0.0:8080", defaultHost: "127.0.0.1", want: Endpoint{"0.0.0.0", 8080}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseEndpoint(tc.in, tc.defaultHost)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseEndpoint(%q, %q) = %v, %v; want %v, error %v", tc.in, tc.defaultHost, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
