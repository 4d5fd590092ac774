package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file is agent mode's dry run (Plan) and its shutdown (Close).

// Plan implements sink.Planner: it reads what this bridge owns (no write)
// and returns what Apply would change as leader. Added holds new and changed
// servers, Changed those whose app check would be updated, Removed owned
// services no longer desired.
func (c *Agent) Plan(ctx context.Context, s endpoint.Snapshot) (endpoint.Diff, error) {
	owned, apps, err := c.readOwned(ctx)
	if err != nil {
		return endpoint.Diff{}, err
	}
	desired := c.shape.desired(s)
	toReg, toDereg, unchanged := reconcile(desired, owned)
	d := diff(desired, owned, toReg, toDereg, unchanged)
	if c.shape.appCheck {
		for _, id := range appUpdates(desired, owned, apps, toReg) {
			d.Changed = append(d.Changed, desired[id].ep)
		}
		slices.SortFunc(d.Changed, endpoint.Compare)
	}
	return d, nil
}

// Close implements sink.Sink. With OnExit "deregister" it removes every
// service this bridge owns (listed with the owner filter, so leftovers of
// earlier runs go too) and then the bridge's own service; with "keep" it
// leaves them for the heartbeat to expire. It then releases the lock, if
// held.
func (c *Agent) Close(ctx context.Context) error {
	var errs []error
	if c.cfg.OnExit == consulclient.OnExitDeregister {
		ids := slices.Collect(maps.Keys(c.known))
		if owned, err := c.listOwned(ctx); err != nil {
			errs = append(errs, err) // fall back to what we know we wrote
		} else {
			ids = slices.Collect(maps.Keys(owned))
		}
		slices.Sort(ids)
		for _, id := range ids {
			if err := c.deregister(ctx, id); err != nil {
				errs = append(errs, err)
				if fatalForRound(ctx, err) {
					break
				}
				continue
			}
			delete(c.known, id)
		}
		if err := c.deregister(ctx, c.ids.bridgeSvc); err != nil {
			errs = append(errs, err)
		}
		c.beat.registered = false
		c.log.Info().Int("services", len(ids)).Msg("deregistered owned services on exit")
	}
	if c.lock != nil {
		if err := c.lock.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("consul close: %w", consulclient.JoinCapped(errs, consulclient.MaxErrsShown))
	}
	return nil
}
