package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

// This file reads the fleet's observations for the leader, and stands in a
// bridge's last good observation while its keys do not decode.

// observations are the decoded observations under the prefix.
type observations struct {
	byBridge map[string]observation.Observation
	// sessions holds the session of each bridge's keys (decoded or not).
	sessions map[string]string
	// bad are the bridges whose keys did not decode.
	bad   []badObservation
	index uint64
	// reset: the index went backwards (a snapshot restore, a new cluster
	// at the same addresses).
	reset bool
}

// badObservation is a bridge whose keys do not decode.
type badObservation struct {
	bridge, key, session string
	modifyIndex          uint64
	err                  error
}

// goodObservation is the last observation of a bridge that decoded, kept
// so that one overwritten key does not cost the bridge's servers while the
// bridge repairs it (it reads its keys back every round).
type goodObservation struct {
	obs      observation.Observation
	session  string
	badSince time.Time // zero while the keys decode
	warned   uint64    // modify index of the bad key last warned about
}

// keepGood updates good with obs and stands in the last good observation
// for a bridge whose keys do not decode, for as long as the session that
// holds them is the one that published it and for a start-up grace at
// most: the owner rewrites its keys within a round. Every undecodable key
// is logged at WARN once per change and counted.
func (c *Catalog) keepGood(log zerolog.Logger, obs observations, good map[string]goodObservation, now time.Time) {
	for b, o := range obs.byBridge {
		good[b] = goodObservation{obs: o, session: obs.sessions[b]}
	}
	for _, bad := range obs.bad {
		g, ok := good[bad.bridge]
		if bad.modifyIndex != g.warned {
			c.metrics.errors.WithLabelValues("observation").Inc()
			log.Warn().Err(bad.err).Str("bridge", bad.bridge).Str("key", bad.key).Uint64("modify_index", bad.modifyIndex).
				Msg("ignoring an observation that does not decode (written by someone other than its bridge?); its bridge rewrites it within a round")
			g.warned = bad.modifyIndex
			good[bad.bridge] = g
		}
		if !ok || g.session != bad.session {
			continue
		}
		if g.badSince.IsZero() {
			g.badSince = now
			good[bad.bridge] = g
		}
		if now.Sub(g.badSince) <= c.cfg.Catalog.StartupGrace {
			obs.byBridge[bad.bridge] = g.obs
		}
	}
	for b := range good {
		if _, ok := obs.sessions[b]; !ok {
			delete(good, b) // its keys are gone: its session ended
		}
	}
}

func (o observations) list() []observation.Observation {
	out := make([]observation.Observation, 0, len(o.byBridge))
	for _, b := range slices.Sorted(maps.Keys(o.byBridge)) {
		out = append(out, o.byBridge[b])
	}
	return out
}

// readObservations lists the observation keys, blocking up to wait for a
// change after index (index or wait 0: no blocking), and decodes them per
// bridge. A bridge whose keys do not decode is left out and logged (untrusted
// input: anyone with write access to the prefix can put anything there).
func (c *Catalog) readObservations(ctx context.Context, index uint64, wait time.Duration) (observations, error) {
	q := &api.QueryOptions{}
	if wait > 0 && index > 0 {
		// Only with a wait: WaitTime 0 is Consul's default (5 minutes).
		q.WaitIndex, q.WaitTime = index, wait
	}
	pairs, meta, err := c.api.ListKV(c.obsPrefix, q.WithContext(ctx))
	if err != nil {
		return observations{}, consulError("list "+c.obsPrefix, c.redact(err), c.catalogRules)
	}
	out := observations{byBridge: map[string]observation.Observation{}, sessions: map[string]string{}}
	if meta != nil {
		out.index = meta.LastIndex
		if out.index < index { // the index went backwards (snapshot restore): start over
			out.index, out.reset = 0, true
		}
	}
	chunks := map[string][][]byte{}
	last := map[string]*api.KVPair{} // the newest key of each bridge
	for _, p := range pairs {
		rest := strings.TrimPrefix(p.Key, c.obsPrefix)
		bridge, _, ok := strings.Cut(rest, "/")
		if !ok || p.Session == "" {
			continue // not a chunk key, or not held by a live session
		}
		chunks[bridge] = append(chunks[bridge], p.Value)
		if l := last[bridge]; l == nil || p.ModifyIndex > l.ModifyIndex {
			last[bridge] = p
		}
		out.sessions[bridge] = p.Session
	}
	for bridge, cs := range chunks {
		o, err := observation.Decode(cs)
		if err == nil && o.Bridge != bridge {
			err = fmt.Errorf("chunk names bridge %q", o.Bridge)
		}
		if err != nil {
			l := last[bridge]
			out.bad = append(out.bad, badObservation{bridge: bridge, key: l.Key, session: l.Session, modifyIndex: l.ModifyIndex, err: err})
			continue
		}
		out.byBridge[bridge] = o
	}
	slices.SortFunc(out.bad, func(a, b badObservation) int { return strings.Compare(a.bridge, b.bridge) })
	return out, nil
}

// logBad logs and counts the undecodable observations of a one-off read
// (Plan, run --once); the leader loop uses keepGood.
func (c *Catalog) logBad(obs observations) {
	for _, bad := range obs.bad {
		c.metrics.errors.WithLabelValues("observation").Inc()
		c.log.Warn().Err(bad.err).Str("bridge", bad.bridge).Str("key", bad.key).Uint64("modify_index", bad.modifyIndex).
			Msg("ignoring an observation that does not decode")
	}
}
