package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/status/live"
	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/xds/ir"
)

// Serving the gate, and reading the other replicas' gates: the I/O around
// the data path that `local` and `serve` share (assembled in dataplane.go).

// newGateServer serves the gate's launches, the /healthz Envoy's active
// health check polls (over HTTP/1.1 and h2c), POST /drain and GET /state.
// /healthz fails while ready does (nil: never): Envoys reach a replica's
// gate before its pod is Ready, and a gate without its policies must not
// take launches.
func newGateServer(g *gate.Gate, ready func() error) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok\n")
	})
	// The elected replica sums every gate's held launches into
	// LaunchPolicy status (see reportLive); each gate knows only its own.
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(gateLoad(g.State()))
	})
	mux.Handle("/build/", g)
	// A replica that is shutting down asks every gate to end, with a
	// retry, the launches that reach it through its own Envoy, which goes
	// away with it. It can only drain its own address: the caller is the
	// peer drained.
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "no peer address", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d\n", g.DrainPeer(host))
	})
	return gate.NewServer("", mux)
}

// serveGate serves the gate on lis until ctx ends. Before shutting the
// server down it asks the gates at peers (the other replicas, from the
// headless gate Service; none in local mode) to drain the launches that
// came through this pod's Envoy, and closes its own gate, so held launches
// and leaders still building end with a "restarting" failed event instead
// of a broken stream; then it gives launches past built grace to finish.
func serveGate(ctx context.Context, g *gate.Gate, ready func() error, lis net.Listener, grace time.Duration, peers ir.Endpoint, log *slog.Logger) error {
	return serveHTTP(ctx, newGateServer(g, ready), lis, grace, func() {
		if peers.Host != "" && peers.Host != "127.0.0.1" {
			drainPeers(peers, log)
		}
		g.Close()
	})
}

// drainPeers posts /drain to every gate the name peers.Host resolves to,
// in parallel, each within a couple of seconds: shutdown must not wait on
// a replica that is itself gone.
func drainPeers(peers ir.Endpoint, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, peers.Host)
	if err != nil {
		log.Warn("draining: resolving the gates", "host", peers.Host, "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, ip := range ips {
		wg.Go(func() {
			u := "http://" + net.JoinHostPort(ip, strconv.Itoa(int(peers.Port))) + "/drain"
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Warn("draining: asking a gate to end this pod's launches", "gate", ip, "err", err)
				return
			}
			defer resp.Body.Close()
			n, _ := io.ReadAll(io.LimitReader(resp.Body, 32))
			log.Info("draining: a gate ended this pod's launches with a retry", "gate", ip, "status", resp.StatusCode, "ended", strings.TrimSpace(string(n)))
		})
	}
	wg.Wait()
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

// gateLoad is the part of a gate's State that LaunchPolicy status shows.
func gateLoad(st gate.State) live.Load {
	l := live.Load{Waiters: st.PolicyWaiters}
	for _, h := range st.Hot {
		s := live.Spec{Key: h.Key, Policy: h.Policy, Waiters: h.Waiters, Stage: buildStage(h.Stage)}
		if h.Breaker == collapse.Open {
			s.BreakerOpenUntil = &h.OpenUntil
		}
		l.Hot = append(l.Hot, s)
	}
	return l
}

// buildStage names a flight's stage in the LaunchPolicy API's words.
func buildStage(s collapse.Stage) v1alpha1.BuildStage {
	switch s {
	case collapse.Starting:
		return v1alpha1.BuildStageStarting
	case collapse.Building:
		return v1alpha1.BuildStageBuilding
	case collapse.Releasing:
		return v1alpha1.BuildStageReleasing
	default:
		return ""
	}
}

// gatherLoads returns what every replica's gate holds: GET /state from
// each gate the name peers.Host resolves to with lookup (the headless gate
// Service, this replica included), or only this replica's gate g when
// there are no peers (peers on loopback: local mode, tests). One gate
// that cannot be read fails the whole: a partial sum would under-report
// the storm.
func gatherLoads(ctx context.Context, g *gate.Gate, peers ir.Endpoint, lookup func(context.Context, string) ([]string, error)) ([]live.Load, error) {
	if peers.Host == "" || peers.Host == "127.0.0.1" {
		return []live.Load{gateLoad(g.State())}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := lookup(ctx, peers.Host)
	if err != nil {
		return nil, fmt.Errorf("resolving the gates %s: %w", peers.Host, err)
	}
	loads := make([]live.Load, len(ips))
	errs := make([]error, len(ips))
	var wg sync.WaitGroup
	for i, ip := range ips {
		wg.Go(func() {
			loads[i], errs[i] = readLoad(ctx, "http://"+net.JoinHostPort(ip, strconv.Itoa(int(peers.Port)))+"/state")
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return loads, nil
}

func readLoad(ctx context.Context, url string) (live.Load, error) {
	var l live.Load
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return l, fmt.Errorf("reading gate state %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return l, fmt.Errorf("reading gate state: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("reading gate state %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&l); err != nil {
		return l, fmt.Errorf("decoding gate state from %s: %w", url, err)
	}
	return l, nil
}
