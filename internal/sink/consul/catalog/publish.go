package catalog

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file is the publishing half of catalog mode: this bridge's
// observation under its session, read back and repaired every quiet round,
// never older than two rounds.

// maxChunk bounds one observation key's value, well under Consul's 512 KiB.
const maxChunk = 400 << 10

// catalogPublisher is where the Member publishes this bridge's
// observation: KV keys held by the current session (the epoch is its ID),
// read back every quiet round and rewritten if someone else changed them;
// on exit (on_exit deregister) handed over, released for a successor.
type catalogPublisher struct {
	c *Catalog
	// extra are the keys under this bridge's name that are not its chunks,
	// as the last Verify found them; the next Write deletes them.
	extra []string
}

// Epoch is the current session's ID; none: the observation will be
// published once there is one.
func (p *catalogPublisher) Epoch(context.Context) (string, error) {
	c := p.c
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur == nil {
		if sessFault := c.faults.get(); sessFault != nil {
			return "", fmt.Errorf("no consul session: %w (the observation will be published once there is one)", sessFault)
		}
		return "", errNoSession
	}
	return cur.id, nil
}

// Write publishes chunks under session sid (see publish).
func (p *catalogPublisher) Write(ctx context.Context, sid string, chunks [][]byte, prev int) (int, error) {
	extra := p.extra
	p.extra = nil
	return p.c.publish(ctx, sid, chunks, prev, extra)
}

// Verify reads this bridge's keys back (overwritten by a plain PUT,
// deleted, or extra keys put under this bridge's name): repair when they
// differ from what was published.
func (p *catalogPublisher) Verify(ctx context.Context, sid string, chunks [][]byte) (bool, error) {
	c := p.c
	why, extra, err := c.verify(ctx, sid, chunks)
	if err != nil || why == "" {
		return false, err
	}
	c.metrics.repairs.Inc()
	c.log.Warn().Str("key", c.obsKey(0)).Str("found", why).
		Msg("this bridge's observation keys were changed by someone else; rewriting them (see docs/design/catalog-fencing.md on scoping bridge tokens)")
	p.extra = extra
	return true, nil
}

// Leave ends the current session on exit. With OnExit "deregister" it
// hands the observation over (handOver: released, so that a successor of
// the same bridge_id takes it over; the leader deletes it after a grace
// otherwise) and destroys the session, so the lock passes on at once; with
// "keep" the session expires by itself within twice its TTL, and the
// observation with it.
func (p *catalogPublisher) Leave(ctx context.Context, sid string, chunks [][]byte) error {
	c := p.c
	c.mu.Lock()
	cur := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cur == nil {
		return nil
	}
	if c.cfg.OnExit == consulclient.OnExitDeregister && sid == cur.id {
		c.handOver(ctx, cur, chunks)
	}
	if err := c.sess.close(ctx, cur, c.cfg.OnExit == consulclient.OnExitDeregister); err != nil {
		return fmt.Errorf("consul close: %w", err)
	}
	if c.cfg.OnExit == consulclient.OnExitDeregister {
		c.log.Info().Msg("consul session destroyed on exit: this bridge's observation is handed over (released) for its successor")
	}
	return nil
}

// republish publishes the newest snapshot under a new session at once, so a
// bridge whose session was lost (a Consul outage, a data loss) is back in the
// observations as soon as Consul answers, not at its next round or retry. A
// snapshot that is no longer fresh is left for the next round.
func (c *Catalog) republish(ctx context.Context) {
	n, last, ok, err := c.member.Republish(ctx)
	switch {
	case !ok:
	case err != nil:
		c.log.Debug().Err(err).Msg("republish on the new session failed; the next round retries")
	case n > 0:
		c.log.Info().Int("servers", len(last.Endpoints)).Uint64("round", last.Round).Msg("observation republished on the new session")
	}
}

// verify reads this bridge's keys and compares them with chunks as
// published under session sid. It returns what differs ("" when nothing
// does) and the keys under this bridge's name that are not its chunks.
func (c *Catalog) verify(ctx context.Context, sid string, chunks [][]byte) (string, []string, error) {
	dir := c.obsPrefix + c.cfg.BridgeID + "/"
	pairs, _, err := c.api.ListKV(dir, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", nil, fmt.Errorf("consul read back this bridge's observation under %s: %w", dir, c.redact(err))
	}
	var (
		why   []string
		extra []string
		found = make([]bool, len(chunks))
	)
	for _, p := range pairs {
		i, err := strconv.Atoi(strings.TrimPrefix(p.Key, dir))
		if err != nil || i < 0 || i >= len(chunks) || p.Key != c.obsKey(i) {
			extra = append(extra, p.Key)
			why = append(why, "unexpected key "+p.Key)
			continue
		}
		found[i] = true
		switch {
		case p.Session != sid:
			why = append(why, fmt.Sprintf("%s not held by this bridge's session (modify index %d)", p.Key, p.ModifyIndex))
		case !bytes.Equal(p.Value, chunks[i]):
			why = append(why, fmt.Sprintf("%s overwritten (modify index %d)", p.Key, p.ModifyIndex))
		}
	}
	for i, ok := range found {
		if !ok {
			why = append(why, c.obsKey(i)+" missing")
		}
	}
	return strings.Join(why, "; "), extra, nil
}

// observation is this bridge's observation of s.
func (c *Catalog) observation(s endpoint.Snapshot) observation.Observation {
	return c.member.Observation(s)
}

// obsKey is the key of chunk i of this bridge's observation.
func (c *Catalog) obsKey(i int) string {
	return c.obsPrefix + c.cfg.BridgeID + "/" + strconv.Itoa(i)
}

// publish writes chunks under session sid in one transaction, deleting the
// chunks of a larger previous publish and the extra keys; it returns the KV
// writes made.
func (c *Catalog) publish(ctx context.Context, sid string, chunks [][]byte, prev int, extra []string) (int, error) {
	var ops api.TxnOps
	for i, v := range chunks {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVLock, Key: c.obsKey(i), Value: v, Session: sid}})
	}
	for i := len(chunks); i < prev; i++ {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: c.obsKey(i)}})
	}
	for _, k := range extra {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: k}})
	}
	if len(ops) > maxTxnOps {
		return 0, fmt.Errorf("consul publish: %d chunks exceed one transaction; lower max_replies", len(chunks))
	}
	ok, resp, err := c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	// A refusal for the rate limit is counted; like any error it is
	// retried with the runner's sink backoff.
	c.countRateLimit("publish", err)
	if err != nil {
		return 0, consulclient.OpError("publish observation under "+c.obsKey(0), c.redact(err), c.catalogRules)
	}
	if !ok {
		if err := c.txnACL("publish observation under "+c.obsKey(0), resp); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("consul publish observation under %s: %s (another session still holds this bridge's keys? a bridge with the same bridge_id may be running)",
			c.obsKey(0), txnErrors(resp))
	}
	c.metrics.kvWrites.Add(float64(len(ops)))
	sink.Wrote(ctx, len(ops))
	return len(ops), nil
}

// handOver releases this bridge's observation keys (a clean exit): they
// keep their value but no session holds them, so that destroying the
// session does not delete them. The leader stands a released observation
// in for a grace (a round plus the retry bound) and then deletes it: a
// bridge of the same bridge_id that starts meanwhile (a DaemonSet's
// rolling update replacing this pod) takes the keys over, and a server
// only this bridge saw never turns critical in between. A failure is
// logged and the exit goes on (the observation is then withdrawn, as
// before).
func (c *Catalog) handOver(ctx context.Context, cur *session, vals [][]byte) {
	if len(vals) == 0 {
		return // nothing published under this session
	}
	var ops api.TxnOps
	for i, v := range vals {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: c.obsKey(i), Value: v, Session: cur.id}})
	}
	ok, resp, err := c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	switch {
	case err != nil:
		c.log.Warn().Err(c.redact(err)).Msg("cannot hand this bridge's observation over on exit; it is withdrawn")
	case !ok:
		c.log.Warn().Str("why", txnErrors(resp)).Msg("cannot hand this bridge's observation over on exit; it is withdrawn")
	default:
		c.metrics.kvWrites.Add(float64(len(ops)))
	}
}
