package gate

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
)

func TestBreakersAreEvictedWhenIdleAndClosed(t *testing.T) {
	u, _ := url.Parse("http://binder")
	g, err := New(Config{Upstream: u, Policies: StaticPolicies(Launch{}, Global{}), MaxBreakers: 10, BreakerIdle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	now := time.Now()
	l := Launch{BreakerFailures: 1, BreakerOpen: time.Hour}
	g.mu.Lock()
	open := g.breakers.get("open", l, now)
	done, err := open.cb.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(errBuildFailed)
	busy := g.breakers.get("busy", l, now)
	g.flights["busy"] = &flight{g: g, key: "busy"}
	for i := range 20 {
		g.breakers.get(fmt.Sprintf("crawl-%d", i), l, now)
	}
	if g.breakers.len() > 12 {
		t.Errorf("%d breakers kept, want about MaxBreakers (10)", g.breakers.len())
	}
	g.mu.Unlock()

	g.sweep(now.Add(2 * time.Minute))
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, _ := open.state(); g.breakers.lookup("open") != open || s != collapse.Open {
		t.Error("an open breaker was evicted")
	}
	if g.breakers.lookup("busy") != busy {
		t.Error("the breaker of a spec in flight was evicted")
	}
	if g.breakers.len() != 2 {
		t.Errorf("after the idle sweep %d breakers are kept, want the open and the busy one", g.breakers.len())
	}
}
