package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/xds/ir"
)

// Pieces of the data path that `local` and `serve` wire the same way.

// edgeBase is the static part of the edge config: where Envoy listens,
// where BinderHub is, and where Envoy finds the gate.
func edgeBase(listen ir.Endpoint, xffHops uint32, upstream *url.URL, gateAt ir.Endpoint) ir.Edge {
	port, _ := strconv.Atoi(upstream.Port())
	if port == 0 {
		port = 80
		if upstream.Scheme == "https" {
			port = 443
		}
	}
	return ir.Edge{
		Listener: ir.Listener{Address: listen, XFFNumTrustedHops: xffHops},
		Binder:   ir.Upstream{Endpoint: ir.Endpoint{Host: upstream.Hostname(), Port: uint32(port)}, TLS: upstream.Scheme == "https"},
		Gate:     ir.Gate{Endpoints: []ir.Endpoint{gateAt}},
	}
}

// newGateServer serves the gate's launches and the /healthz Envoy's active
// health check polls (over HTTP/1.1 and h2c).
func newGateServer(g *gate.Gate) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/build/", g)
	return gate.NewServer("", mux)
}

// serveGate serves the gate on lis until ctx ends. It closes the gate
// before shutting the server down, so held launches end with a "restarting"
// failed event instead of a broken stream, then gives leaders and
// pass-through launches grace to finish.
func serveGate(ctx context.Context, g *gate.Gate, lis net.Listener, grace time.Duration) error {
	return serveHTTP(ctx, newGateServer(g), lis, grace, g.Close)
}

// serveHTTP serves srv on lis until ctx ends, runs beforeShutdown (if any),
// then gives open requests grace to finish before cutting them.
func serveHTTP(ctx context.Context, srv *http.Server, lis net.Listener, grace time.Duration, beforeShutdown func()) error {
	errc := make(chan error, 1)
	go func() { errc <- ignoreClosed(srv.Serve(lis)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if beforeShutdown != nil {
		beforeShutdown()
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return <-errc
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
