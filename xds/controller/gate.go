package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/binderguard/binderguard/proxy/collapse"
	"github.com/binderguard/binderguard/proxy/gate"
	"github.com/binderguard/binderguard/xds/ir"
)

// saturatedRetryAfter is the Retry-After of the edge's failed event with
// status_code 429 for a full spec. It is a fixed figure, not derived from
// the policy, and shorter than a full default waiting room takes to drain
// (2000 launches released at 20/s: 100 s after its build ends).
const saturatedRetryAfter = 30 * time.Second

// HotBlocks turns the gate's state into edge rules, each answered with
// one failed event on an HTTP 200 stream: an open breaker gets
// status_code 503 until it closes, a full waiting room 429. Specs that are
// merely busy stay with the gate, which collapses them.
func HotBlocks(st gate.State, now time.Time) []ir.Block {
	var out []ir.Block
	for _, h := range st.Hot {
		var b ir.Block
		switch {
		case h.Breaker == collapse.Open && h.OpenUntil.After(now):
			b = ir.Block{
				Class:      ir.ClassBreakerOpen,
				StatusCode: 503,
				Message:    fmt.Sprintf("Recent builds of this repository failed, so launches are paused until %s. Please try again later.", h.OpenUntil.UTC().Format(time.Kitchen+" MST")),
				RetryAfter: roundUp(h.OpenUntil.Sub(now), 10*time.Second),
			}
		case h.Full:
			b = ir.Block{
				Class:      ir.ClassSaturated,
				StatusCode: 429,
				Message:    fmt.Sprintf("This repository is being built and its waiting room (%d launches) is full. Please try again in a little while.", h.MaxWaiters),
				RetryAfter: saturatedRetryAfter,
			}
		default:
			continue
		}
		b.Source = "gate:" + h.Key
		for _, p := range h.Paths {
			b.PathPrefix = p
			out = append(out, b)
		}
	}
	return out
}

// WatchGate feeds the gate's published state to c until ctx ends.
func WatchGate(ctx context.Context, g *gate.Gate, c *Controller) {
	for st := range g.Subscribe(ctx) {
		c.SetHot(HotBlocks(st, time.Now()))
	}
}

// roundUp keeps Retry-After coarse, so the edge rule (and its RDS push)
// does not change on every state the gate publishes.
func roundUp(d, step time.Duration) time.Duration {
	return (d + step - 1) / step * step
}
