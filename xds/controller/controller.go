// Package controller keeps the edge Envoy's config in step with its inputs:
// the policy snapshot (bans, launch limits) and the gate's state (hot specs
// with an open breaker or a full waiting room). Adapters reduce each input
// to IR; the controller translates and publishes on every change.
//
// It must never build Envoy protos itself (that is package translate) nor
// decide policy (that is the policies packages and the gate): it only
// plumbs.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/binderguard/binderguard/policies/latest"
	"github.com/binderguard/binderguard/xds/ir"
	"github.com/binderguard/binderguard/xds/server"
	"github.com/binderguard/binderguard/xds/translate"
)

// Controller holds the latest inputs and publishes the edge they make.
type Controller struct {
	srv *server.Server
	log *slog.Logger
	// tr keeps each block's translation between syncs, so an edit costs
	// what it touches; syncMu gives it one user at a time.
	syncMu sync.Mutex
	tr     *translate.Incremental

	mu      sync.Mutex
	base    ir.Edge // listener, upstreams, launch settings; Blocks unused
	bans    []ir.Block
	hot     []ir.Block
	kick    latest.Kick // one pending change, coalesced
	skipped string      // last report of skipped blocks, to log each once
	extra   []string    // the site's extra provider prefixes, for BanBlocks
}

// New returns a Controller for the static parts in base.
func New(base ir.Edge, srv *server.Server, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base.Blocks = nil
	return &Controller{srv: srv, log: log, base: base, kick: latest.NewKick(), tr: translate.NewIncremental()}
}

// SetExtraProviders names the site's extra provider prefixes, which the
// next ApplySnapshot bans by pattern at the edge (see BanBlocks).
func (c *Controller) SetExtraProviders(extra []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extra = slices.Clone(extra)
}

// SetBans replaces the banned prefixes (from the policy snapshot). It
// keeps b, which the caller must not modify afterwards: copying 20,000
// blocks would cost an edit more than translating it.
func (c *Controller) SetBans(b []ir.Block) { c.update(func() { c.bans = slices.Clip(b) }) }

// SetHot replaces the hot specs (from the gate's state).
func (c *Controller) SetHot(b []ir.Block) { c.update(func() { c.hot = slices.Clone(b) }) }

// SetLaunch replaces the launch settings (from the policy snapshot).
func (c *Controller) SetLaunch(l ir.Launch) { c.update(func() { c.base.Launch = l }) }

// SetBreakers replaces the clusters' circuit-breaker thresholds.
func (c *Controller) SetBreakers(binder, gate ir.Breakers) {
	c.update(func() { c.base.Binder.Breakers, c.base.Gate.Breakers = binder, gate })
}

// SetGateEndpoints replaces the discovered gates (base.Gate.Discovered).
func (c *Controller) SetGateEndpoints(eps []ir.Endpoint) {
	c.update(func() { c.base.Gate.Endpoints = slices.Clone(eps) })
}

func (c *Controller) update(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
	c.kick.Poke()
}

// Edge returns the IR the current inputs make: bans first, so a ban wins
// over a hot spec on the same prefix (the translator also leaves out a
// hot spec under a ban's prefix).
func (c *Controller) Edge() *ir.Edge {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.base
	if len(c.hot) == 0 {
		e.Blocks = c.bans // replaced, never modified, by SetBans
		return &e
	}
	e.Blocks = make([]ir.Block, 0, len(c.bans)+len(c.hot))
	e.Blocks = append(append(e.Blocks, c.bans...), c.hot...)
	return &e
}

// Sync translates and publishes the current inputs now. A bad block is
// skipped and reported; the rest is published.
func (c *Controller) Sync(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	start := time.Now()
	e := c.Edge()
	res, terr := c.tr.Translate(e)
	if res == nil {
		return fmt.Errorf("translating edge config: %w", terr)
	}
	c.mu.Lock()
	report := ""
	if terr != nil {
		report = terr.Error()
	}
	fresh := report != c.skipped
	c.skipped = report
	c.mu.Unlock()
	if terr != nil && fresh { // Sync runs on every gate state change: log news only
		c.log.Warn("skipped edge rules that cannot be programmed", "err", terr)
	}
	changed, err := c.srv.Set(ctx, res.ByType(), c.tr.Versions(), c.tr.ResourceVersions())
	if err != nil {
		return fmt.Errorf("publishing edge config: %w", err)
	}
	if changed {
		c.log.Info("edge config published", "blocks", len(e.Blocks), "took", time.Since(start).Round(time.Microsecond))
	}
	return nil
}

// Run publishes on every change until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.Sync(ctx); err != nil {
		c.log.Error("publishing edge config", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
			if err := c.Sync(ctx); err != nil && !errors.Is(err, context.Canceled) {
				c.log.Error("publishing edge config", "err", err)
			}
		}
	}
}
