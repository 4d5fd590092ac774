package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file reads the fleet's observations from the KV store: the store of
// package fleet's leader, and of Plan and run --once.

// readObservations lists the observation keys, blocking up to wait for a
// change after index (index or wait 0: no blocking), and decodes them per
// bridge; the holder of a bridge's keys is their session. A bridge whose
// keys do not decode is left out and listed in Bad (untrusted input: anyone
// with write access to the prefix can put anything there).
func (c *Catalog) readObservations(ctx context.Context, index uint64, wait time.Duration) (fleet.Observations, error) {
	obs, _, err := c.readObservationsReleased(ctx, index, wait)
	return obs, err
}

// released is the observation a bridge handed over on exit (handOver): its
// keys, held by no session, and their indexes (to delete them only as they
// are).
type released struct {
	obs  observation.Observation
	keys map[string]uint64 // key -> ModifyIndex
}

// readObservationsReleased is readObservations, and the observations that
// bridges with no live keys handed over (released) on exit; released keys
// that do not decode are left out.
func (c *Catalog) readObservationsReleased(ctx context.Context, index uint64, wait time.Duration) (fleet.Observations, map[string]released, error) {
	q := &api.QueryOptions{}
	if wait > 0 && index > 0 {
		// Only with a wait: WaitTime 0 is Consul's default (5 minutes).
		q.WaitIndex, q.WaitTime = index, wait
	}
	pairs, meta, err := c.api.ListKV(c.obsPrefix, q.WithContext(ctx))
	if err != nil {
		return fleet.Observations{}, nil, consulclient.OpError("list "+c.obsPrefix, c.redact(err), c.catalogRules)
	}
	out := fleet.Observations{ByBridge: map[string]observation.Observation{}, Holders: map[string]string{}}
	if meta != nil {
		out.Index = meta.LastIndex
		if out.Index < index { // the index went backwards (snapshot restore): start over
			out.Index, out.Reset = 0, true
		}
	}
	chunks := map[string][][]byte{}
	last := map[string]*api.KVPair{}   // the newest key of each bridge
	free := map[string][]*api.KVPair{} // keys held by no session, by bridge
	for _, p := range pairs {
		rest := strings.TrimPrefix(p.Key, c.obsPrefix)
		bridge, _, ok := strings.Cut(rest, "/")
		if !ok {
			continue // not a chunk key
		}
		if p.Session == "" {
			free[bridge] = append(free[bridge], p) // released, or written by someone else
			continue
		}
		chunks[bridge] = append(chunks[bridge], p.Value)
		if l := last[bridge]; l == nil || p.ModifyIndex > l.ModifyIndex {
			last[bridge] = p
		}
		out.Holders[bridge] = p.Session
	}
	for bridge, cs := range chunks {
		o, err := observation.Decode(cs)
		if err == nil && o.Bridge != bridge {
			err = fmt.Errorf("chunk names bridge %q", o.Bridge)
		}
		if err != nil {
			l := last[bridge]
			out.Bad = append(out.Bad, fleet.Bad{Bridge: bridge, Key: l.Key, Holder: l.Session, Revision: l.ModifyIndex, Err: err})
			continue
		}
		out.ByBridge[bridge] = o
	}
	slices.SortFunc(out.Bad, func(a, b fleet.Bad) int { return strings.Compare(a.Bridge, b.Bridge) })
	rel := map[string]released{}
	for bridge, ps := range free {
		if _, live := out.Holders[bridge]; live {
			continue // its bridge is back: its own repair deletes stray keys
		}
		var cs [][]byte
		r := released{keys: map[string]uint64{}}
		for _, p := range ps {
			cs = append(cs, p.Value)
			r.keys[p.Key] = p.ModifyIndex
		}
		o, err := observation.Decode(cs)
		if err != nil || o.Bridge != bridge {
			continue
		}
		r.obs = o
		rel[bridge] = r
	}
	return out, rel, nil
}

// logBad logs and counts the undecodable observations of a one-off read
// (Plan, run --once); the leader's loop stands in their last good ones.
func (c *Catalog) logBad(obs fleet.Observations) {
	for _, bad := range obs.Bad {
		c.metrics.errors.WithLabelValues("observation").Inc()
		c.log.Warn().Err(bad.Err).Str("bridge", bad.Bridge).Str("key", bad.Key).Uint64("modify_index", bad.Revision).
			Msg("ignoring an observation that does not decode")
	}
}
