package gate_test

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/heldclient"
)

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

type memUse struct{ rss, heap, stack uint64 }

func measureMem(b *testing.B) memUse {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatalf("reading RSS: %v", err)
	}
	var rss uint64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	return memUse{rss: rss, heap: ms.HeapInuse, stack: ms.StackInuse}
}

// BenchmarkHeldFollowers holds 10,000 followers of one building spec on
// one gate over h2c and reports the gate process's extra memory against
// a baseline taken in the same run with only the leader streaming. The
// clients run in a child process; the simulator's cost is in both
// readings (it has one build watcher either way).
func BenchmarkHeldFollowers(b *testing.B) {
	const n = 10000
	sim := fastSim()
	sim.BuildTime = time.Hour
	sim.KeepaliveInterval = time.Minute
	l := testLaunch()
	l.MaxWaiters = 0
	for range b.N {
		func() {
			s := startStack(b, sim, gate.StaticPolicies(l, gate.Global{}), func(c *gate.Config) { c.KeepaliveInterval = 15 * time.Second })
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			building := make(chan struct{})
			var once sync.Once
			led := make(chan result, 1)
			go func() {
				led <- s.launch(ctx, "gh/org/repo/HEAD", clientIP(0), nil, func(p sse.Payload) {
					if p.Phase == sse.PhaseFetching || p.Phase == sse.PhaseBuilding {
						once.Do(func() { close(building) })
					}
				})
			}()
			<-building
			base := measureMem(b)
			goroutines := runtime.NumGoroutine()

			release, err := heldclient.Hold(ctx, s.gateURL+"/build/gh/org/repo/HEAD", n, heldclient.H2C)
			if err != nil {
				b.Fatal(err)
			}
			waitFor(b, "followers held", func() bool { return gauge(s.reg, "binderguard_waiters") == n })
			held := measureMem(b)
			if path := os.Getenv("BINDERGUARD_HEAP_PROFILE"); path != "" {
				writeHeapProfile(b, path)
			}
			perG := float64(runtime.NumGoroutine()-goroutines) / n

			if err := release(); err != nil {
				b.Fatal(err)
			}
			waitFor(b, "followers gone", func() bool { return gauge(s.reg, "binderguard_waiters") == 0 })

			extraRSS := float64(held.rss) - float64(base.rss)
			extraHeap := float64(held.heap+held.stack) - float64(base.heap+base.stack)
			b.ReportMetric(extraRSS/(1<<20), "extra-RSS-MiB")
			b.ReportMetric(extraRSS/n/1024, "RSS-KiB/follower")
			b.ReportMetric(extraHeap/n/1024, "heap+stack-KiB/follower")
			b.ReportMetric(float64(base.rss)/(1<<20), "baseline-RSS-MiB")
			b.ReportMetric(float64(held.rss)/float64(base.rss), "RSS-ratio")
			b.ReportMetric(perG, "goroutines/follower")
			cancel()
			<-led
		}()
	}
}

// BenchmarkPassThroughTTFB compares the time to the first event of a
// launch of a built image through the gate (h2c, as from Envoy) with the
// same launch straight to the simulator (HTTP/1.1 keep-alive), in the
// same run, requests interleaved.
func BenchmarkPassThroughTTFB(b *testing.B) {
	sim := fastSim()
	sim.BuiltSpecs = "."
	sim.LaunchTime = time.Millisecond
	sim.ReadyHold = time.Millisecond
	s := startStack(b, sim, gate.StaticPolicies(testLaunch(), gate.Global{}), func(c *gate.Config) { c.BuiltTTL = time.Hour })
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer direct.CloseIdleConnections()
	const spec = "gh/org/repo/HEAD"
	ttfb := func(c *http.Client, u string) time.Duration {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, u+"/build/"+spec, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-Real-Ip", "10.9.9.9")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		rd := sse.NewReader(resp.Body)
		var first time.Duration
		for {
			e, err := rd.Next()
			if err != nil {
				break
			}
			if first == 0 && !e.IsComment() {
				first = time.Since(start)
			}
		}
		return first
	}
	ttfb(s.client, s.gateURL) // the first launch leads and marks the image built
	var viaGate, straight []time.Duration
	b.ResetTimer()
	for range b.N {
		straight = append(straight, ttfb(direct, s.simURL))
		viaGate = append(viaGate, ttfb(s.client, s.gateURL))
	}
	b.StopTimer()
	g50, d50 := percentile(viaGate, 0.5), percentile(straight, 0.5)
	b.ReportMetric(float64(d50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(g50.Microseconds()), "gate-p50-µs")
	b.ReportMetric(float64((g50 - d50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64(g50)/float64(d50), "p50-ratio")
	b.ReportMetric(float64((percentile(viaGate, 0.99) - percentile(straight, 0.99)).Microseconds()), "added-p99-µs")
	if n := metricValue(b, s.reg, "binderguard_launches_total", "outcome", "pass"); n < float64(b.N) {
		b.Fatalf("only %v of %d launches passed straight through", n, b.N)
	}
}
