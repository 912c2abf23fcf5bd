package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/xds/envoyproc"
	"github.com/binderguard/binderguard/xds/ir"
)

// keepAlive is one client with warm connections, so latency is the edge's
// and not connection setup.
var keepAlive = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}

// timeGets times n sequential GETs of url and returns their durations,
// failing on a status other than want.
func timeGets(b *testing.B, url string, n, want int) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		resp, err := keepAlive.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(start))
		if resp.StatusCode != want {
			b.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, want)
		}
	}
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func banBlocks(n int) []ir.Block {
	out := make([]ir.Block, 0, 2*n)
	for i := range n {
		msg := fmt.Sprintf("repository %d is banned", i)
		out = append(out,
			ir.Block{PathPrefix: fmt.Sprintf("/build/gh/org%d/repo%d/", i, i), Class: ir.ClassBanned, StatusCode: 403, Message: msg},
			ir.Block{PathPrefix: fmt.Sprintf("/build/git/https%%3A%%2F%%2Fgithub.com%%2Forg%d%%2Frepo%d/", i, i), Class: ir.ClassBanned, StatusCode: 403, Message: msg})
	}
	return out
}

// BenchmarkEdgeLatencyBans measures what one request costs at the edge
// with 10 and with 10,000 bans (20,000 path prefixes; with 1 and 1,000
// launch policies, from a real policy snapshot) in the same run: a
// banned launch answered by Envoy itself, and a non-launch request passed
// to the simulator. Flat cost means ratio_10k ≈ 1. Two stacks, one per
// size, are measured in alternating batches, so both sizes share the
// machine's noise (on a loaded machine back-to-back phases differ by 2x).
// accept_10k_ms is the time from the controller's change to Envoy's ACK
// of the 10,000-ban config; publish_10k_ms the part spent in binderguard
// (translate, validate, hash, cache).
func BenchmarkEdgeLatencyBans(b *testing.B) {
	const n = 2000
	type side struct {
		s                 *stack
		target            string
		banned, pass      []time.Duration
		published, accept time.Duration
	}
	setup := func(bans int) *side {
		s := startStack(b, options{delta: true})
		snap, errs := snapshot.New(policyObjects(bans, bans/10))
		if len(errs) > 0 {
			b.Fatal(errs[0])
		}
		prev := s.xds.Version(resource.ExtensionConfigType) // bans are in the ECDS slots
		start := time.Now()
		s.ctl.ApplySnapshot(snap, time.Now()) // the controller's Run loop publishes
		for s.xds.Version(resource.ExtensionConfigType) == prev {
			if time.Since(start) > 30*time.Second {
				b.Fatal("controller did not publish within 30 s")
			}
			time.Sleep(time.Millisecond)
		}
		sd := &side{s: s, published: time.Since(start)}
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		for _, typ := range []string{resource.RouteType, resource.ExtensionConfigType} {
			if err := s.xds.WaitAcked(ctx, typ, s.xds.Version(typ)); err != nil {
				b.Fatal(err)
			}
		}
		sd.accept = time.Since(start)
		sd.target = fmt.Sprintf("%s/build/gh/org%d/repo%d/HEAD", s.edgeURL, bans-1, bans-1)
		if a := launch(s.ctx, s.edgeURL, fmt.Sprintf("gh/org%d/repo%d/HEAD", bans-1, bans-1), 5*time.Second); a.final().StatusCode != 403 {
			b.Fatalf("last of %d bans not answered at the edge: %+v", bans, a.events)
		}
		timeGets(b, sd.target, 200, 200) // warm up
		timeGets(b, s.edgeURL+"/versions", 200, 200)
		return sd
	}
	ten, tenK := setup(10), setup(10000)
	b.ResetTimer()
	for b.Loop() {
		for range 10 {
			for _, sd := range []*side{ten, tenK} {
				sd.banned = append(sd.banned, timeGets(b, sd.target, n/10, 200)...)
				sd.pass = append(sd.pass, timeGets(b, sd.s.edgeURL+"/versions", n/10, 200)...)
			}
		}
	}
	banned10, pass10, banned10k, pass10k := ten.banned, ten.pass, tenK.banned, tenK.pass
	publish10k, accept10k := tenK.published, tenK.accept
	b.ReportMetric(us(pct(banned10, 50)), "banned_p50_us_10")
	b.ReportMetric(us(pct(banned10k, 50)), "banned_p50_us_10k")
	b.ReportMetric(us(pct(banned10k, 99)), "banned_p99_us_10k")
	b.ReportMetric(us(pct(pass10, 50)), "pass_p50_us_10")
	b.ReportMetric(us(pct(pass10k, 50)), "pass_p50_us_10k")
	b.ReportMetric(float64(pct(banned10k, 50))/float64(pct(banned10, 50)), "ratio_banned_10k/10")
	b.ReportMetric(float64(pct(pass10k, 50))/float64(pct(pass10, 50)), "ratio_pass_10k/10")
	b.ReportMetric(float64(publish10k.Milliseconds()), "publish_10k_ms")
	b.ReportMetric(float64(accept10k.Milliseconds()), "accept_10k_ms")
}

// BenchmarkNonBuildOverhead compares non-launch requests through Envoy
// (programmed by binderguard) with the same requests straight to the
// simulator, and with a bare Envoy (static config: one route, one
// cluster) to separate the cost of the hop from the cost of binderguard's
// config, interleaved in one run. Target: ratio_p50 <= 1.10.
func BenchmarkNonBuildOverhead(b *testing.B) {
	s := startStack(b, options{})
	bareBase, _ := startBareEnvoy(b, s.binderAddr, "/versions", false)
	bare := bareBase + "/versions"
	direct := "http://" + s.binderAddr.String() + "/versions"
	edge := s.edgeURL + "/versions"
	for _, u := range []string{direct, edge, bare} {
		timeGets(b, u, 200, 200)
	}
	var d, e, p []time.Duration
	b.ResetTimer()
	for b.Loop() {
		for range 10 {
			d = append(d, timeGets(b, direct, 100, 200)...)
			e = append(e, timeGets(b, edge, 100, 200)...)
			p = append(p, timeGets(b, bare, 100, 200)...)
		}
	}
	b.ReportMetric(us(pct(d, 50)), "direct_p50_us")
	b.ReportMetric(us(pct(p, 50)), "bare_envoy_p50_us")
	b.ReportMetric(us(pct(e, 50)), "binderguard_p50_us")
	b.ReportMetric(float64(pct(e, 50))/float64(pct(d, 50)), "ratio_p50")
	b.ReportMetric(float64(pct(e, 99))/float64(pct(d, 99)), "ratio_p99")
	b.ReportMetric(float64(pct(e, 50))/float64(pct(p, 50)), "ratio_p50_vs_bare_envoy")
}

// startBareEnvoy runs an Envoy with a minimal static config proxying
// everything to upstream (over h2c when h2; circuit breakers lifted, so
// it holds as many streams as binderguard's gate cluster), waits until it answers
// ready (a 200 on that path, through it), and returns its base URL and
// supervisor.
func startBareEnvoy(b *testing.B, upstream ir.Endpoint, ready string, h2 bool) (string, *envoyproc.Supervisor) {
	b.Helper()
	port := freePort(b)
	protocol := ""
	if h2 {
		protocol = `
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}`
	}
	cfg := fmt.Sprintf(`static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bare
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up, timeout: 0s}}]}
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: up
    type: STATIC
    circuit_breakers: {thresholds: [{max_connections: 1000000, max_pending_requests: 1000000, max_requests: 1000000}]}%s
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %d}}}}]}]
`, port, protocol, upstream.Host, upstream.Port)
	sup, err := envoyproc.New(envoyproc.Config{Binary: envoyBinary(b), Bootstrap: []byte(cfg), Args: []string{"--concurrency", "2"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get(base + ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, sup
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("bare envoy never served")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkBanPropagation measures a ban edit from the controller to the
// first launch Envoy answers with it (in-process control plane; the file
// edit path is TestLocalBanFileEditBlocksAtEnvoyWithinOneSecond), with 10
// and then 10,000 other bans in place, in one run: the
// ratio of the two p50s is the figure (target ≤ 2). Each b.N iteration
// is one edit at each size, on two stacks edited in turn. Envoy runs on
// delta ADS, binderguard's default; BAN_PROPAGATION_SOTW=1 runs it on
// state of the world, which re-sends every ban slot on each edit.
func BenchmarkBanPropagation(b *testing.B) {
	delta := os.Getenv("BAN_PROPAGATION_SOTW") == ""
	type side struct {
		s    *stack
		base []ir.Block
		lat  []time.Duration
	}
	// Two stacks, edited in turn, so both sizes share the machine's noise.
	sides := []*side{{base: banBlocks(10)}, {base: banBlocks(10000)}}
	for _, sd := range sides {
		sd.s = startStack(b, options{delta: delta})
		sd.s.ctl.SetBans(sd.base)
		sd.s.waitRouteAcked()
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		for _, sd := range sides {
			sd.lat = append(sd.lat, propagateOne(b, sd.s, sd.base, fmt.Sprintf("/build/gh/new%d/repo/", i)))
		}
	}
	lat10, lat10k := sides[0].lat, sides[1].lat
	b.ReportMetric(ms(pct(lat10, 50)), "p50_ms_10")
	b.ReportMetric(ms(pct(lat10k, 50)), "p50_ms_10k")
	b.ReportMetric(ms(pct(lat10k, 99)), "p99_ms_10k")
	b.ReportMetric(float64(pct(lat10k, 50))/float64(pct(lat10, 50)), "ratio_p50_10k/10")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// propagateOne adds a ban on path to base and times until Envoy answers
// a launch under it with the ban.
func propagateOne(b *testing.B, s *stack, base []ir.Block, path string) time.Duration {
	start := time.Now()
	s.ctl.SetBans(append(slices.Clip(base), ir.Block{PathPrefix: path, Class: ir.ClassBanned, StatusCode: 403, Message: "new"}))
	for {
		if probeBan(keepAlive, s.edgeURL, path+"HEAD") == "banned" {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			b.Fatal("ban not enforced after 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// policyObjects makes n RepoBans and m LaunchPolicies.
func policyObjects(n, m int) ([]v1alpha1.RepoBan, []v1alpha1.LaunchPolicy) {
	bans := make([]v1alpha1.RepoBan, n)
	for i := range bans {
		bans[i] = v1alpha1.RepoBan{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("ban-%d", i)},
			Spec: v1alpha1.RepoBanSpec{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/org%d/repo%d", i, i))},
				Message: fmt.Sprintf("repository %d is banned", i)}}
	}
	lps := make([]v1alpha1.LaunchPolicy, m)
	for i := range lps {
		lps[i] = v1alpha1.LaunchPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "binder", Name: fmt.Sprintf("lp-%d", i)},
			Spec: v1alpha1.LaunchPolicySpec{Selector: v1alpha1.SpecSelector{Repos: []v1alpha1.RepoRef{v1alpha1.RepoRef(fmt.Sprintf("gh/popular%d/repo", i))}}}}
	}
	return bans, lps
}
