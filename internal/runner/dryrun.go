package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// dryRun writes the round's operations as JSON lines to DryRunOut. A sink
// implementing sink.Planner reports its own registry diff (add, remove, and
// one noop per desired endpoint already present); for other sinks, and when
// there are none, the planner's own plan is written. Every line carries the
// sink name; a removal the guard holds is a noop marked held (the
// endpoint stays in the snapshot). It returns the errors of planners and of
// the writer.
func (r *runner) dryRun(ctx context.Context, p plan.Plan) []error {
	enc := json.NewEncoder(r.cfg.DryRunOut)
	var errs []error
	write := func(op plan.Op) {
		if op.Op != plan.OpNoop {
			r.out.Differs = true
		}
		if err := enc.Encode(op); err != nil {
			errs = append(errs, fmt.Errorf("dry run: write round %d: %w", p.Round, err))
		}
	}
	if len(r.cfg.Sinks) == 0 {
		for _, op := range p.Ops() {
			write(op)
		}
	}
	snap := p.Snapshot()
	held := p.HeldSet()
	for i, s := range r.cfg.Sinks {
		name := r.names[i]
		pl, ok := s.(sink.Planner)
		if !ok {
			for _, op := range p.Ops() {
				op.Sink = name
				write(op)
			}
			continue
		}
		diff, err := pl.Plan(ctx, snap)
		if err != nil {
			r.log.Error().Str("sink", name).Uint64("round", p.Round).Err(err).Msg("sink plan failed")
			errs = append(errs, fmt.Errorf("sink %s: plan round %d: %w", name, p.Round, err))
			continue
		}
		added := make(map[netip.AddrPort]bool, len(diff.Added))
		ops := make([]plan.Op, 0, len(diff.Added)+len(diff.Removed)+len(snap.Endpoints))
		for _, e := range diff.Added {
			added[e.Addr] = true
			ops = append(ops, plan.NewOp(plan.OpAdd, e, p.Round))
		}
		for _, e := range diff.Removed {
			ops = append(ops, plan.NewOp(plan.OpRemove, e, p.Round))
		}
		for _, e := range snap.Endpoints {
			if !added[e.Addr] {
				op := plan.NewOp(plan.OpNoop, e, p.Round)
				op.Held = held[e.Addr]
				ops = append(ops, op)
			}
		}
		for _, op := range ops {
			op.Sink = name
			write(op)
		}
	}
	return errs
}
