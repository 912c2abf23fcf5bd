package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/binderguard/binderguard/proxy/sse"
	"github.com/binderguard/binderguard/test/fakebinder"
	"github.com/binderguard/binderguard/xds/ir"
)

// leakFree checks, once the stack started after it is torn down, that no
// goroutine it or the test started is left: the gate runs in this process,
// so a gate goroutine that outlives its request shows here. Call it before
// startStack (cleanups run last-registered first).
func leakFree(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, opt)
	})
}

// footprint is binderguard's goroutines (the process's, less those of the
// in-process BinderHub simulator, whose builds are BinderHub's business)
// and the process's live heap after GC, with the simulator's build
// watchers.
type footprint struct {
	goroutines int
	heap       uint64
	watchers   int64
}

func (s *stack) measure() footprint {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return footprint{ownGoroutines(), m.HeapAlloc, s.binder.Stats().ActiveBuildWatchers}
}

// ownGoroutines counts the goroutines with no frame in the simulator.
func ownGoroutines() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for g := range strings.SplitSeq(buf.String(), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "/test/fakebinder.") {
			n++
		}
	}
	return n
}

// Slack over a baseline that still counts as "back": a few idle
// Envoy→gate and gate→BinderHub connections and their buffers. A leak of
// anything per client, after thousands of clients, is far above it.
const (
	goroutineSlack = 100
	heapSlack      = 32 << 20
)

// gateGauge reads one of the serving gate's unlabelled gauges (its held
// launches, binderguard_waiters; its upstream launch streams,
// binderguard_upstream_streams), or -1 when it is missing, so no wait for
// zero passes by accident.
func (s *stack) gateGauge(name string) int {
	if s.gateReg == nil {
		return -1
	}
	mfs, err := s.gateReg.Gather()
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

// settle waits until the gate holds no launch and streams nothing to
// BinderHub, BinderHub watches no more builds than base plus left (builds
// that launches the gate let through started, which BinderHub goes on
// watching after their clients left, as it does), and binderguard's
// goroutines and the live heap are back near base.
func (s *stack) settle(t *testing.T, base footprint, left int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		waiters, streams := s.gateGauge("binderguard_waiters"), s.gateGauge("binderguard_upstream_streams")
		now := s.measure()
		if waiters == 0 && streams == 0 && now.watchers <= base.watchers+left &&
			now.goroutines <= base.goroutines+goroutineSlack && now.heap <= base.heap+heapSlack {
			t.Logf("settled: goroutines %d (baseline %d), live heap %.1f MiB (baseline %.1f MiB), BinderHub build watchers %d (baseline %d)",
				now.goroutines, base.goroutines, float64(now.heap)/(1<<20), float64(base.heap)/(1<<20), now.watchers, base.watchers)
			return
		}
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Logf("goroutines:\n%.6000s", buf.String())
			t.Fatalf("not back to baseline after 30 s: gate waiters %d streams %d, BinderHub build watchers %d (baseline %d, %d let through), goroutines %d (baseline %d), live heap %.1f MiB (baseline %.1f MiB)",
				waiters, streams, now.watchers, base.watchers, left, now.goroutines, base.goroutines,
				float64(now.heap)/(1<<20), float64(base.heap)/(1<<20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// launchWorks is the "next normal launch" after each attack.
func (s *stack) launchWorks(t *testing.T) {
	t.Helper()
	if a := launch(s.ctx, s.edgeURL, "gh/org/prebuilt/HEAD", 20*time.Second); a.final().Phase != sse.PhaseReady {
		t.Fatalf("the next normal launch got %+v (err %v), want ready", a.events, a.err)
	}
}

// fanOut runs f(i) for i in [0, n) with at most par at once.
func fanOut(n, par int, f func(i int)) {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// Floods and hostile clients through a real Envoy, one attack after the
// other on one stack. After each: the gate holds nothing, its goroutines
// and live heap are back near where they were, BinderHub watches no
// build, and a normal launch works.
func TestFloodsAndHostileClientsLeaveNothingBehind(t *testing.T) {
	leakFree(t)
	s := startStack(t, options{
		// Builds outlast every attack, so launches stay held until their
		// clients leave; "prebuilt" launches at once for the check after.
		fb:             fakebinder.Config{BuildTime: 10 * time.Minute, BuiltSpecs: "prebuilt"},
		headersTimeout: 2 * time.Second,
	})
	addr := strings.TrimPrefix(s.edgeURL, "http://")
	s.launchWorks(t)
	base := s.measure()

	t.Run("5,000 clients that connect and drop mid-stream", func(t *testing.T) {
		const n, par = 5000, 500
		var answered, refused atomic.Int64
		fanOut(n, par, func(i int) {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				refused.Add(1)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(c, "GET /build/gh/org/dropped/HEAD HTTP/1.1\r\nHost: binder.test\r\nAccept: text/event-stream\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && resp.StatusCode == 200 {
				answered.Add(1)
			}
			// Drop: close without reading the rest of the stream.
		})
		t.Logf("%d answered 200 before dropping, %d could not connect", answered.Load(), refused.Load())
		if answered.Load() < n*99/100 {
			t.Errorf("only %d of %d clients got an answer before they dropped", answered.Load(), n)
		}
		s.settle(t, base, 0)
		s.launchWorks(t)
	})

	t.Run("slowloris clients are cut at the headers timeout", func(t *testing.T) {
		const n = 200
		cut := make([]time.Duration, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					cut[i] = -1
					return
				}
				defer c.Close()
				start := time.Now()
				fmt.Fprintf(c, "GET /build/gh/org/slow/HEAD HTTP/1.1\r\nHost: binder.test\r\n")
				closed := make(chan struct{})
				go func() { // Envoy answers 408 or closes; either ends the read
					defer close(closed)
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, _ = io.Copy(io.Discard, c)
				}()
				for j := 0; ; j++ {
					select {
					case <-closed:
						cut[i] = time.Since(start)
						return
					case <-time.After(300 * time.Millisecond):
						if _, err := fmt.Fprintf(c, "X-Slow-%d: x\r\n", j); err != nil {
							<-closed
							cut[i] = time.Since(start)
							return
						}
					}
				}
			})
		}
		// The pod answers others while they trickle.
		time.Sleep(500 * time.Millisecond)
		s.launchWorks(t)
		wg.Wait()
		for i, d := range cut {
			if d < 0 || d > 10*time.Second {
				t.Fatalf("slowloris client %d: cut after %v, want within the 2 s headers timeout (plus slack)", i, d)
			}
		}
		if n := s.binderHits.prefix("/build/gh/org/slow/"); n != 0 {
			t.Errorf("%d slowloris requests reached BinderHub", n)
		}
		s.settle(t, base, 0)
	})

	t.Run("HTTP/2 rapid reset is cut off", func(t *testing.T) {
		// The listener's codec is AUTO: h2c with prior knowledge is HTTP/2
		// here, as HTTP/2 over TLS is behind an ingress.
		const streams = 20000
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var goAway atomic.Bool
		readDone := make(chan error, 1)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					readDone <- err
					return
				}
				if _, ok := f.(*http2.GoAwayFrame); ok {
					goAway.Store(true)
				}
			}
		}()
		var hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		sent := 0
		for i := range streams {
			hbuf.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "binder.test"},
				{":path", "/build/gh/org/reset/HEAD"}, {"accept", "text/event-stream"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			id := uint32(2*i + 1)
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
				break
			}
			if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				break
			}
			sent++
		}
		var rerr error
		select {
		case rerr = <-readDone:
		case <-time.After(30 * time.Second):
			t.Fatalf("Envoy kept a connection open after %d streams opened and reset at once", sent)
		}
		t.Logf("sent %d HEADERS+RST_STREAM pairs; Envoy sent GOAWAY %v, connection ended: %v; %d reached the gate",
			sent, goAway.Load(), rerr, s.gateHits.prefix("/build/gh/org/reset/"))
		if !goAway.Load() && !errors.Is(rerr, io.EOF) && !isReset(rerr) {
			t.Errorf("connection ended with %v, want a GOAWAY or a close", rerr)
		}
		if v := s.adminStat("http.edge.downstream_rq_rx_reset"); v == "" || v == "0" {
			t.Errorf("Envoy counted no client resets (http.edge.downstream_rq_rx_reset = %q)", v)
		}
		s.settle(t, base, 0)
		s.launchWorks(t)
	})

	t.Run("a launch flood beyond the gate's capacity gets Retry-After", func(t *testing.T) {
		// The gate cluster's breakers are what a site's caps set them to
		// (controller.EdgeBreakers); a small cap makes the flood exceed it.
		const capacity, n = 50, 1000
		setBreakers := func(b ir.Breakers) {
			s.ctl.SetBreakers(ir.Breakers{}, b)
			if err := s.ctl.Sync(s.ctx); err != nil {
				t.Fatal(err)
			}
			s.waitAcked(10 * time.Second)
		}
		setBreakers(ir.Breakers{MaxRequests: capacity, MaxPendingRequests: capacity})
		defer setBreakers(ir.Breakers{})
		var held, shed, other atomic.Int64
		var bad atomic.Value
		release := make(chan struct{})
		var wg sync.WaitGroup
		var started sync.WaitGroup
		for i := range n {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				done := func() { once.Do(started.Done) }
				defer done()
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					other.Add(1)
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				fmt.Fprintf(c, "GET /build/gh/flood/r%d/HEAD HTTP/1.1\r\nHost: binder.test\r\nAccept: text/event-stream\r\n\r\n", i)
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					other.Add(1)
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
				ev, err := sse.NewReader(br).Next()
				for err == nil && ev.IsComment() {
					ev, err = sse.NewReader(br).Next()
				}
				var p sse.Payload
				if err == nil {
					p, err = ev.Decode()
				}
				switch {
				case err == nil && p.Phase == sse.PhaseFailed:
					if resp.Header.Get("Retry-After") == "" || (p.StatusCode != 503 && p.StatusCode != 429) {
						bad.Store(fmt.Sprintf("%+v, Retry-After %q", p, resp.Header.Get("Retry-After")))
					}
					shed.Add(1)
				default: // an open stream: a launch the gate holds
					held.Add(1)
					done()
					<-release
				}
			}()
		}
		started.Wait()
		// While the flood is held, the pod answers at once.
		t0 := time.Now()
		resp, err := http.Get(s.edgeURL + "/versions")
		if err != nil || resp.StatusCode != 200 || time.Since(t0) > 2*time.Second {
			t.Errorf("during the flood /versions got %v %v after %v", resp, err, time.Since(t0))
		}
		if resp != nil {
			resp.Body.Close()
		}
		close(release)
		wg.Wait()
		t.Logf("%d held, %d failed with Retry-After, %d other", held.Load(), shed.Load(), other.Load())
		if b := bad.Load(); b != nil {
			t.Errorf("a shed launch got %s, want a failed 503/429 with Retry-After", b)
		}
		if held.Load() > capacity || shed.Load() < n-capacity || other.Load() != 0 {
			t.Errorf("%d held, %d shed, %d other; want at most %d held and every other launch shed with Retry-After",
				held.Load(), shed.Load(), other.Load(), capacity)
		}
		s.settle(t, base, held.Load())
		s.launchWorks(t)
	})
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}
