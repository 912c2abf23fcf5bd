package main

import (
	"context"
	"log/slog"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/binderguard/binderguard/policies/api/v1alpha1"
	"github.com/binderguard/binderguard/policies/status/live"
)

// reportLive runs on the elected replica until ctx ends: every
// liveInterval it sums the held launches of every replica's gate and
// writes the LaunchPolicy counters that changed. A round that cannot read
// every gate, or list the policies, writes nothing (the status keeps its
// last, timestamped report) and is retried at the next tick.
func (s *inCluster) reportLive(ctx context.Context, w *live.Writer, log *slog.Logger) error {
	tick := time.NewTicker(s.cfg.liveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		loads, err := gatherLoads(ctx, s.gate, s.peers)
		if err != nil {
			log.Warn("gathering the gates' held launches", "err", err)
			continue
		}
		var lps v1alpha1.LaunchPolicyList
		if err := s.mgr.GetClient().List(ctx, &lps, client.InNamespace(s.cfg.namespace)); err != nil {
			log.Warn("listing LaunchPolicies", "err", err)
			continue
		}
		if n, err := w.Write(ctx, lps.Items, loads); err != nil && ctx.Err() == nil {
			log.Warn("writing live counters", "err", err, "written", n)
		}
	}
}

// reportBans runs on every replica until ctx ends: every liveInterval it
// adds what RepoBans blocked and refused here since the last report to
// their status (one write per ban with new counts: bounded by the
// interval however busy a ban is), and once more as it stops, so a
// rollout loses no counts.
func (s *inCluster) reportBans(ctx context.Context, t *live.Tally, log *slog.Logger) error {
	tick := time.NewTicker(s.cfg.liveInterval)
	defer tick.Stop()
	flush := func(ctx context.Context) {
		if _, err := t.FlushBans(ctx, s.mgr.GetClient(), s.mgr.GetAPIReader(), log, time.Now()); err != nil {
			log.Warn("adding ban counters to RepoBan status", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			flush(fctx)
			return nil
		case <-tick.C:
			flush(ctx)
		}
	}
}
