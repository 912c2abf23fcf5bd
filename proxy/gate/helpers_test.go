package gate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/heldclient"
)

func TestMain(m *testing.M) {
	if heldclient.Requested() {
		// BenchmarkHeldFollowers re-runs this binary as its client, so the
		// client's memory is not counted as the gate's.
		os.Exit(heldclient.Run())
	}
	goleak.VerifyTestMain(m)
}

// stack is a simulator and a gate in front of it, each on a real
// loopback listener.
type stack struct {
	sim     *fakebinder.Server
	simURL  string
	gate    *gate.Gate
	gateURL string
	reg     *prometheus.Registry
	client  *http.Client // h2c, as Envoy talks to the gate
}

// fastSim is a simulator with short builds and launches.
func fastSim() fakebinder.Config {
	return fakebinder.Config{
		BuildTime:         2 * time.Second,
		LaunchTime:        200 * time.Millisecond,
		ReadyHold:         100 * time.Millisecond,
		KeepaliveInterval: time.Second,
		Pool:              64,
	}
}

// testLaunch is the launch policy of most tests: collapse, release 250/s
// (a 1,000-client storm releases over 4 s: quick, yet spread enough that a
// loaded test machine keeps up with the launches).
func testLaunch() gate.Launch {
	return gate.Launch{
		Collapse:        true,
		MaxWaiters:      5000,
		ReleaseRate:     250,
		ReleaseBurst:    50,
		BreakerFailures: 1,
		BreakerOpen:     30 * time.Second,
	}
}

func startStack(t testing.TB, simCfg fakebinder.Config, pol gate.Policies, tweak func(*gate.Config)) *stack {
	t.Helper()
	sim, err := fakebinder.New(simCfg)
	if err != nil {
		t.Fatalf("starting simulator: %v", err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	up, _ := url.Parse(simSrv.URL)
	reg := prometheus.NewRegistry()
	cfg := gate.Config{Upstream: up, Policies: pol, Registerer: reg, KeepaliveInterval: 500 * time.Millisecond, StateInterval: 20 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gate.New(cfg)
	if err != nil {
		t.Fatalf("gate.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gate.NewServer("", g)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = g.Run(ctx) }()

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	s := &stack{sim: sim, simURL: simSrv.URL, gate: g, gateURL: "http://" + ln.Addr().String(), reg: reg, client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
		<-served
		cancel()
		<-ran
		g.Close()
		simSrv.CloseClientConnections()
		sim.Close()
		simSrv.Close()
	})
	return s
}

// result is what one client saw on its launch stream.
type result struct {
	ip      string
	events  []sse.Payload
	at      []time.Duration // when each event arrived, from start
	start   time.Time
	header  http.Header
	ready   *sse.Payload
	failed  *sse.Payload
	elapsed time.Duration // to ready or failed
	firstAt time.Duration // to the first event
	err     error
}

func (r result) phases() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, e.Phase)
	}
	return out
}

// when is the absolute time of the first event of phase, or zero.
func (r result) when(phase string) time.Time {
	for i, e := range r.events {
		if e.Phase == phase {
			return r.start.Add(r.at[i])
		}
	}
	return time.Time{}
}

func (r result) count(phase string) int {
	n := 0
	for _, e := range r.events {
		if e.Phase == phase {
			n++
		}
	}
	return n
}

// launch opens /build/<spec> as client ip (X-Real-Ip, as Envoy sets it)
// and reads until ready or failed, then closes like the JS client.
// onEvent, if set, sees each event as it arrives.
func (s *stack) launch(ctx context.Context, spec, ip string, hdr http.Header, onEvent func(sse.Payload)) result {
	return launchURL(ctx, s.client, s.gateURL+"/build/"+spec, ip, hdr, onEvent)
}

func launchURL(ctx context.Context, c *http.Client, u, ip string, hdr http.Header, onEvent func(sse.Payload)) result {
	start := time.Now()
	res := result{ip: ip, start: start}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		res.err = err
		return res
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	if ip != "" {
		req.Header.Set("X-Real-Ip", ip)
	}
	resp, err := c.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.header = resp.Header
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		res.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		return res
	}
	rd := sse.NewReader(resp.Body)
	for {
		e, err := rd.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) || ctx.Err() == nil {
				res.err = fmt.Errorf("stream ended before ready or failed: %w (phases %v)", err, res.phases())
			}
			return res
		}
		if e.IsComment() {
			continue
		}
		p, err := e.Decode()
		if err != nil {
			res.err = err
			return res
		}
		if len(res.events) == 0 {
			res.firstAt = time.Since(start)
		}
		res.events = append(res.events, p)
		res.at = append(res.at, time.Since(start))
		if onEvent != nil {
			onEvent(p)
		}
		switch p.Phase {
		case sse.PhaseReady:
			res.ready = &p
			res.elapsed = time.Since(start)
			return res
		case sse.PhaseFailed:
			res.failed = &p
			res.elapsed = time.Since(start)
			return res
		}
	}
}

// clientIP is a distinct address per client, so the simulator's
// binder_client_ip tells whose upstream request produced a ready event.
func clientIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255) }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// gauge reads one of the gate's unlabelled gauges, as a dashboard does:
// its held launches (binderguard_waiters) and upstream launch streams
// (binderguard_upstream_streams) are published there, not in State. It is
// -1 when the gauge is missing, so no wait for zero passes by accident.
func gauge(reg *prometheus.Registry, name string) int {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].Gauge != nil {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return -1
}

func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

func hasMessage(p *sse.Payload, sub string) bool {
	return p != nil && strings.Contains(p.Message, sub)
}
