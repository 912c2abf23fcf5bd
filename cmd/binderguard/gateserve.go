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
	"syscall"
	"time"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/latest"
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

// gatePeers lists every replica's gate as host:port, this replica's
// included: the gates a stopping replica asks to drain its launches, and
// whose held launches the elected replica sums. Nil: no other replicas
// (local mode, tests).
type gatePeers func(ctx context.Context) ([]string, error)

// dnsPeers resolves the name e.Host with lookup (a headless Service lists
// its Ready replicas); none when e is on loopback or unset.
func dnsPeers(e ir.Endpoint, lookup func(context.Context, string) ([]string, error)) gatePeers {
	if e.Host == "" || e.Host == "127.0.0.1" {
		return nil
	}
	return func(ctx context.Context) ([]string, error) {
		ips, err := lookup(ctx, e.Host)
		if err != nil {
			return nil, fmt.Errorf("resolving the gates %s: %w", e.Host, err)
		}
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = net.JoinHostPort(ip, strconv.Itoa(int(e.Port)))
		}
		return out, nil
	}
}

// discoveredPeers are the gates Envoy sends launches to (--gate-service),
// Ready or not, so that none that holds launches is missed.
func discoveredPeers(v *latest.Value[[]ir.Endpoint]) gatePeers {
	return func(context.Context) ([]string, error) {
		eps := v.Load()
		out := make([]string, len(eps))
		for i, e := range eps {
			out[i] = e.String()
		}
		return out, nil
	}
}

// serveGate serves the gate on lis until ctx ends. Before shutting the
// server down it asks the gates at peers (the other replicas; none in
// local mode) to drain the launches that came through this pod's Envoy,
// and closes its own gate, so held launches and leaders still building
// end with a "restarting" failed event instead of a broken stream; then
// it gives launches past built grace to finish.
func serveGate(ctx context.Context, g *gate.Gate, ready func() error, lis net.Listener, grace time.Duration, peers gatePeers, log *slog.Logger) error {
	return serveHTTP(ctx, newGateServer(g, ready), lis, grace, func() {
		if peers != nil {
			drainPeers(peers, log)
		}
		g.Close()
	})
}

// drainPeers posts /drain to every gate of peers, in parallel, each within
// a couple of seconds: shutdown must not wait on a replica that is itself
// gone.
func drainPeers(peers gatePeers, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, err := peers(ctx)
	if err != nil {
		log.Warn("draining: listing the gates", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/drain", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Warn("draining: asking a gate to end this pod's launches", "gate", addr, "err", err)
				return
			}
			defer resp.Body.Close()
			n, _ := io.ReadAll(io.LimitReader(resp.Body, 32))
			log.Info("draining: a gate ended this pod's launches with a retry", "gate", addr, "status", resp.StatusCode, "ended", strings.TrimSpace(string(n)))
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
// each gate of peers, or only this replica's gate g when there are none.
// A gate that refuses the connection holds nothing (it is starting or
// gone, and a gone gate's launches ended with it); one that cannot be
// read otherwise fails the whole: a partial sum would under-report the
// storm.
func gatherLoads(ctx context.Context, g *gate.Gate, peers gatePeers) ([]live.Load, error) {
	if peers == nil {
		return []live.Load{gateLoad(g.State())}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := peers(ctx)
	if err != nil {
		return nil, err
	}
	loads := make([]live.Load, len(addrs))
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			loads[i], errs[i] = readLoad(ctx, "http://"+addr+"/state")
			if errors.Is(errs[i], syscall.ECONNREFUSED) {
				errs[i] = nil
			}
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
