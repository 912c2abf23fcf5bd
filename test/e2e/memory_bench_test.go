package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/binderguard/binderguard/policies/snapshot"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/test/heldclient"
	"github.com/binderguard/binderguard/xds/ir"
)

func TestMain(m *testing.M) {
	if heldclient.Requested() {
		os.Exit(heldclient.Run())
	}
	os.Exit(m.Run())
}

// rssOf is a process's resident set (VmRSS in /proc/<pid>/status).
func rssOf(t testing.TB, pid string) uint64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("reading RSS of %s: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parsing VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%s/status", pid)
	return 0
}

func envoyRSS(t testing.TB, s *stack) uint64 {
	t.Helper()
	pid := s.envoy.PID()
	if pid == 0 {
		t.Fatal("envoy is not running")
	}
	return rssOf(t, strconv.Itoa(pid))
}

// selfRSS is this process's resident set after a GC that returns freed
// memory to the OS, so readings compare live memory.
func selfRSS(t testing.TB) uint64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	return rssOf(t, "self")
}

// BenchmarkEnvoyMemoryBans compares Envoy's resident memory with 10,000
// bans (20,000 path prefixes, from a real policy snapshot, each ban with
// its own message) against 10, on stacks started and loaded in the same
// run (target ratio_rss_10k/10 ≤ 1.5). A third stack holds the same
// 10,000 bans sharing one message, which splits Envoy's heap growth into
// what a prefix costs and what a distinct message costs.
func BenchmarkEnvoyMemoryBans(b *testing.B) {
	load := func(bans int, oneMessage bool) *stack {
		s := startStack(b, options{delta: true})
		objs, lps := policyObjects(bans, bans/10)
		if oneMessage {
			for i := range objs {
				objs[i].Spec.Message = "this repository is banned"
			}
		}
		snap, errs := snapshot.New(objs, lps)
		if len(errs) > 0 {
			b.Fatal(errs[0])
		}
		s.ctl.ApplySnapshot(snap, time.Now())
		if err := s.ctl.Sync(s.ctx); err != nil {
			b.Fatal(err)
		}
		s.waitAcked(60 * time.Second)
		if a := launch(s.ctx, s.edgeURL, fmt.Sprintf("gh/org%d/repo%d/HEAD", bans-1, bans-1), 5*time.Second); a.final().StatusCode != 403 {
			b.Fatalf("last of %d bans not answered at the edge: %+v", bans, a.events)
		}
		timeGets(b, s.edgeURL+"/versions", 50, 200)
		return s
	}
	var rss10, rss10k, rssOne, heap10, heap10k, heapOne uint64
	for b.Loop() {
		ten, tenK, one := load(10, false), load(10000, false), load(10000, true)
		time.Sleep(2 * time.Second) // let them settle (old config drained, freed memory released)
		rss10, rss10k, rssOne = envoyRSS(b, ten), envoyRSS(b, tenK), envoyRSS(b, one)
		heap10, heap10k, heapOne = envoyAllocated(b, ten), envoyAllocated(b, tenK), envoyAllocated(b, one)
	}
	b.ReportMetric(float64(rss10)/(1<<20), "rss_MiB_10")
	b.ReportMetric(float64(rss10k)/(1<<20), "rss_MiB_10k")
	b.ReportMetric(float64(rss10k)/float64(rss10), "ratio_rss_10k/10")
	b.ReportMetric(float64(rssOne)/float64(rss10), "ratio_rss_10k_one_message/10")
	// Two prefixes per ban (its gh/ and git/ spellings); a prefix's share
	// also carries the 1,000 LaunchPolicies both 10,000-ban stacks hold.
	b.ReportMetric((float64(heapOne)-float64(heap10))/(2*(10000-10)), "heap_B/prefix")
	b.ReportMetric((float64(heap10k)-float64(heapOne))/(10000-1), "heap_B/message")
}

// BenchmarkHeldLaunchesEndToEnd holds 10,000 launches of one building
// repository through Envoy and the gate, each client on its own HTTP/1.1
// connection to Envoy as a browser is (clients in a child process), and
// reports the resident memory each held launch adds to Envoy and to
// binderguard (this process: the gate, and the simulator's one build
// watcher, which the idle reading has too), measured against the same
// stack idle with the build's leader streaming, in the same run. Targets:
// KiB/held ≤ 32, gate_KiB/held ≤ 16. Envoy's share has its own baseline
// in the same run: a bare Envoy (one static route to the same gate, over
// h2c) holding the same launches (bare_envoy_KiB/held).
func BenchmarkHeldLaunchesEndToEnd(b *testing.B) {
	const n = 10000
	raiseNoFile(b, n+2000) // Envoy, which inherits it, holds a connection per launch
	l := gate.DefaultLaunch()
	l.MaxWaiters = 0 // no per-spec cap: every follower is held
	s := startStack(b, options{
		delta:        true,
		fb:           fakebinder.Config{BuildTime: time.Hour, KeepaliveInterval: time.Minute},
		launch:       l,
		gateBreakers: ir.Breakers{MaxPendingRequests: 2 * n, MaxRequests: 2 * n},
	})
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()

	// The leader: the build every follower waits for.
	building := make(chan struct{})
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.edgeURL+"/build/gh/org/repo/HEAD", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		rd := sse.NewReader(bufio.NewReader(resp.Body))
		once := sync.Once{}
		for {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			if ev.IsComment() {
				continue
			}
			p, err := ev.Decode()
			if err == nil && (p.Phase == sse.PhaseBuilding || p.Phase == sse.PhaseFetching || p.Phase == sse.PhaseWaiting) {
				once.Do(func() { close(building) })
			}
		}
	}()
	select {
	case <-building:
	case <-time.After(30 * time.Second):
		b.Fatal("the leader's build never started")
	}
	time.Sleep(time.Second)
	idleEnvoy, idleSelf, idleAlloc := envoyRSS(b, s), selfRSS(b), envoyAllocated(b, s)
	// The baseline: a bare Envoy (one static route to the same gate over
	// h2c, nothing of binderguard's config) holding the same launches.
	bareBase, bare := startBareEnvoy(b, s.gateAddr, "/healthz", true)
	idleBare := rssOf(b, strconv.Itoa(bare.PID()))

	hold := func(url string, measure func()) {
		release, err := heldclient.Hold(ctx, url, n, heldclient.HTTP1)
		if err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "followers held at the gate", func() bool { return s.gateGauge("binderguard_waiters") >= n })
		time.Sleep(time.Second)
		measure()
		if err := release(); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "followers gone", func() bool { return s.gateGauge("binderguard_waiters") == 0 })
	}
	var heldEnvoy, heldSelf, heldAlloc, heldBare uint64
	for b.Loop() {
		hold(s.edgeURL+"/build/gh/org/repo/HEAD", func() {
			heldEnvoy, heldSelf, heldAlloc = envoyRSS(b, s), selfRSS(b), envoyAllocated(b, s)
		})
		hold(bareBase+"/build/gh/org/repo/HEAD", func() { heldBare = rssOf(b, strconv.Itoa(bare.PID())) })
	}
	envoyPer := (float64(heldEnvoy) - float64(idleEnvoy)) / n / 1024
	gatePer := (float64(heldSelf) - float64(idleSelf)) / n / 1024
	b.ReportMetric(envoyPer+gatePer, "KiB/held")
	b.ReportMetric(envoyPer, "envoy_KiB/held")
	barePer := (float64(heldBare) - float64(idleBare)) / n / 1024
	b.ReportMetric(barePer, "bare_envoy_KiB/held")
	b.ReportMetric(envoyPer/barePer, "ratio_envoy_vs_bare")
	b.ReportMetric(gatePer, "gate_KiB/held")
	// Envoy's own heap (tcmalloc "allocated", admin /memory): the part of
	// its growth that config can change; the rest is the allocator's.
	b.ReportMetric((float64(heldAlloc)-float64(idleAlloc))/n/1024, "envoy_heap_KiB/held")
	b.ReportMetric(float64(idleEnvoy)/(1<<20), "envoy_idle_MiB")
	b.ReportMetric(float64(idleSelf)/(1<<20), "gate_idle_MiB")
	if got := s.xds.NACKs(); got != 0 {
		b.Fatalf("%d NACKs", got)
	}
}

// envoyAllocated is the heap Envoy's allocator reports in use.
func envoyAllocated(t testing.TB, s *stack) uint64 {
	t.Helper()
	resp, err := http.Get(s.adminURL + "/memory")
	if err != nil {
		t.Fatalf("envoy /memory: %v", err)
	}
	defer resp.Body.Close()
	var m struct {
		Allocated string `json:"allocated"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("envoy /memory: %v", err)
	}
	v, err := strconv.ParseUint(m.Allocated, 10, 64)
	if err != nil {
		t.Fatalf("envoy /memory allocated %q: %v", m.Allocated, err)
	}
	return v
}

// raiseNoFile lifts this process's open-file limit (which Envoy, started
// by it, inherits) to at least n, within the hard limit.
func raiseNoFile(t testing.TB, n uint64) {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatalf("reading the open-file limit: %v", err)
	}
	if l.Cur >= n {
		return
	}
	if l.Max < n {
		t.Fatalf("open-file hard limit %d is below the %d this benchmark needs (raise it: ulimit -Hn)", l.Max, n)
	}
	l.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatalf("raising the open-file limit to %d: %v", n, err)
	}
}
