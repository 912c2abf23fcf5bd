package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/test/fakebinder"
)

// failingStack runs the stack in front of a simulator whose builds of
// gh/broken/ fail; one failure opens that repository's breaker.
func failingStack(t testing.TB) *stack {
	l := gate.DefaultLaunch()
	l.BreakerFailures, l.BreakerOpen = 1, time.Hour
	return startStack(t, options{launch: l, fb: fakebinder.Config{FailSpecs: "gh/broken/"}})
}

// storm launches one failing repository n times at once.
func storm(s *stack, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { launch(s.ctx, s.edgeURL, "gh/broken/repo/HEAD", 20*time.Second) })
	}
	wg.Wait()
}

// The real Prometheus, with the shipped rules, and the real Alertmanager,
// with the shipped routing, notify the team when a repository's builds
// keep failing and when the gate stops. Timings are shortened so make test
// stays quick (scrapes and evaluations every 500 ms, every rule's for: 2s,
// group_wait 1s); the promtool unit tests pin the shipped for: values, and
// BenchmarkTimeToNotify measures with the shipped timings.
func TestAlertsReachTheTeam(t *testing.T) {
	s := failingStack(t)
	rcv := startReceiver(t)
	promURL := startAlerting(t, s, alerting{scrape: 500 * time.Millisecond, eval: 500 * time.Millisecond, shortFor: "2s", groupWait: "1s"}, rcv)

	// Quiet while healthy: several evaluations, past every for: and
	// group_wait, and no alert even pending.
	time.Sleep(5 * time.Second)
	if v := promQuery(t, promURL, "count(ALERTS)"); v != -1 {
		t.Fatalf("%v alerts pending or firing while healthy (see %s/alerts)", v, promURL)
	}
	rcv.mu.Lock()
	early := rcv.got
	rcv.mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("notified before anything failed: %+v", early)
	}

	t.Run("a storm on a failing repository opens its breaker and tells the chat", func(t *testing.T) {
		storm(s, 10)
		n := rcv.wait(t, "BinderguardBreakerOpen", 30*time.Second)
		if n.path != "/chat" {
			t.Errorf("BinderguardBreakerOpen went to %s, want /chat (a warning)", n.path)
		}
	})
	t.Run("a stopped gate pages", func(t *testing.T) {
		s.killGate()
		n := rcv.wait(t, "BinderguardGateUnhealthy", 30*time.Second)
		if n.path != "/page" {
			t.Errorf("BinderguardGateUnhealthy went to %s, want /page", n.path)
		}
	})
}

// BenchmarkTimeToNotify measures the time from the first failure to the
// receiver's POST with the shipped rules, routing and timings: scrapes
// every 15 s (Prometheus' usual interval), evaluations every minute
// (Prometheus' default; the rules file sets none), every for: and
// group_wait as shipped. It takes minutes per case (the breaker's for: is
// 15 m): go test ./test/e2e -run '^$' -bench TimeToNotify -timeout 60m
func BenchmarkTimeToNotify(b *testing.B) {
	cases := map[string]struct {
		alert string
		fail  func(*stack)
	}{
		"gate stopped": {"BinderguardGateUnhealthy", func(s *stack) { s.killGate() }},
		"breaker open": {"BinderguardBreakerOpen", func(s *stack) { storm(s, 10) }},
	}
	for name, tc := range cases {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				s := failingStack(b)
				rcv := startReceiver(b)
				startAlerting(b, s, alerting{scrape: 15 * time.Second, eval: time.Minute}, rcv)
				start := time.Now()
				tc.fail(s)
				n := rcv.wait(b, tc.alert, 25*time.Minute)
				b.ReportMetric(n.at.Sub(start).Seconds(), "s-to-notify")
			}
		})
	}
}
