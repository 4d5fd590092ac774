package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file keeps the leader off nodes that are not its fleet's. A fleet
// creates a server's node only if no node of that name exists (NodeCAS with
// index 0): a node in the way (another fleet's, a hand-registered node, a
// node with an agent, another tool's) is never overwritten. It is skipped,
// logged once and counted, checked again at every resync, and the fleet's
// entry is registered once the name is free.

// foreignNodes are the node names the fleet wants that someone else holds.
// Safe for concurrent use (the leader's transactions run in parallel).
type foreignNodes struct {
	mu sync.Mutex
	// inWay: node -> owner key of the nodes skipped now.
	inWay map[string]string
	// warned: node -> owner key last logged, so that a node in the way is
	// logged once however often it is skipped; forgotten when the name is
	// free again.
	warned map[string]string
}

// foreignFound records that node, which the fleet wants, is held by the
// node n of someone else; it logs and counts the first time this owner
// holds it.
func (c *Catalog) foreignFound(n *api.Node) {
	key := metaKey(n.Meta)
	f := &c.foreign
	f.mu.Lock()
	if f.inWay == nil {
		f.inWay, f.warned = map[string]string{}, map[string]string{}
	}
	f.inWay[n.Node] = key
	logged, ok := f.warned[n.Node]
	f.warned[n.Node] = key
	size := len(f.inWay)
	f.mu.Unlock()
	c.metrics.foreignNodes.Set(float64(size))
	if ok && logged == key {
		return
	}
	c.metrics.foreignFound.Inc()
	c.log.Warn().Str("node", n.Node).Str("address", n.Address).Str("owner", ownerOf(n.Meta)).Str("node_meta", key).
		Msg("a node of the name this fleet would register belongs to someone else: skipped, never overwritten; the server is registered once the name is free (checked every consul_resync)")
}

// foreignGone forgets node: it is free again (or this fleet's).
func (c *Catalog) foreignGone(node string) {
	f := &c.foreign
	f.mu.Lock()
	_, was := f.inWay[node]
	delete(f.inWay, node)
	delete(f.warned, node)
	size := len(f.inWay)
	f.mu.Unlock()
	c.metrics.foreignNodes.Set(float64(size))
	if was {
		c.log.Info().Str("node", node).Msg("a node name this fleet skipped is free again")
	}
}

// skipForeign drops from p the registrations of nodes known to be in the
// way, and forgets the nodes p no longer wants to register (the server is
// gone, or the node is this fleet's now).
func (c *Catalog) skipForeign(p catalogPlan) catalogPlan {
	f := &c.foreign
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inWay) == 0 {
		return p
	}
	wanted := map[string]bool{}
	p.Register = slices.DeleteFunc(p.Register, func(e catalogEntry) bool {
		_, skip := f.inWay[e.Key]
		wanted[e.Key] = skip
		return skip
	})
	shared := SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix) // in the way of every registration
	maps.DeleteFunc(f.inWay, func(node, _ string) bool { return !wanted[node] && node != shared })
	c.metrics.foreignNodes.Set(float64(len(f.inWay)))
	return p
}

// recheckForeign reads each node in the way again (at a resync): a node
// that is gone, or is now this fleet's, is forgotten, so the next plan
// registers the server; a node whose owner changed is logged again.
func (c *Catalog) recheckForeign(ctx context.Context) {
	c.foreign.mu.Lock()
	nodes := slices.Sorted(maps.Keys(c.foreign.inWay))
	c.foreign.mu.Unlock()
	for _, node := range nodes {
		n, err := c.api.Node(node, (&api.QueryOptions{}).WithContext(ctx))
		switch {
		case err != nil:
			c.log.Debug().Err(c.redact(err)).Str("node", node).Msg("cannot read a node in the way; keeping it skipped")
		case n == nil || c.ownNode(n):
			c.foreignGone(node)
		default:
			c.foreignFound(n)
		}
	}
}

// ownNode reports whether n carries this fleet's node meta.
func (c *Catalog) ownNode(n *api.Node) bool {
	return n.Meta[consulclient.MetaManagedBy] == consulclient.ManagedByValue && n.Meta[MetaFleet] == c.cfg.Catalog.KVPrefix
}

// ownerOf describes who holds a node, from its meta.
func ownerOf(meta map[string]string) string {
	switch by := meta[consulclient.MetaManagedBy]; {
	case by == consulclient.ManagedByValue && meta[MetaFleet] != "":
		return "udp-discovery-bridge fleet " + meta[MetaFleet]
	case by != "":
		return "managed-by " + by
	default:
		return "unknown (no managed-by meta: registered by hand, by another tool, or a node with an agent)"
	}
}

// metaKey is meta as sorted k=v pairs.
func metaKey(meta map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(meta)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + meta[k])
	}
	return b.String()
}

// writeItem is one entry's operations in a transaction: what to write
// (kind, and the operations that takes: parts) and how many operations
// that is (n); txnItems builds them (ops) just before the transaction is
// sent.
type writeItem struct {
	e     *catalogEntry // in the plan: an item is a few words, not a copy
	kind  writeKind
	parts writeParts
	n     int
	ops   api.TxnOps
}

// txnRolledBack is a transaction Consul rolled back, with the failed
// operations.
type txnRolledBack struct {
	n    int // operations sent
	errs []*api.TxnError
}

func (e *txnRolledBack) Error() string {
	return fmt.Sprintf("consul txn of %d operations rolled back: %s", e.n, txnErrors(&api.TxnResponse{Errors: e.errs}))
}

// txnItems writes items in one transaction after guard and returns those
// written. When only node claims failed (an item's first operation, a
// NodeCAS of a node that exists), Consul rolled everything back: each
// claimed node is read; one of this fleet's (its service was removed by
// hand) is taken over with NodeSet, anyone else's is skipped as foreign,
// and the rest is sent again. Any other failure is returned as it is.
func (c *Catalog) txnItems(ctx context.Context, guard *api.TxnOp, items []writeItem) ([]writeItem, error) {
	// The operations live as long as this transaction: a copy of the items
	// holds them, not the write's list of every item.
	items = slices.Clone(items)
	for i := range items {
		items[i].ops = c.ops(items[i])
	}
	for len(items) > 0 {
		ops := api.TxnOps{guard}
		first := make([]int, len(items)) // index of each item's first op
		for i, it := range items {
			first[i] = len(ops)
			ops = append(ops, it.ops...)
		}
		err := c.txn(ctx, ops)
		if err == nil {
			c.claimed(items)
			return items, nil
		}
		var rb *txnRolledBack
		if !errors.As(err, &rb) || len(rb.errs) == 0 {
			return nil, err
		}
		failed := map[int]bool{}
		for _, te := range rb.errs {
			i, ok := slices.BinarySearch(first, te.OpIndex)
			if !ok || !items[i].claims() {
				return nil, err
			}
			failed[i] = true
		}
		var keep []writeItem
		for i, it := range items {
			if !failed[i] {
				keep = append(keep, it)
				continue
			}
			n, rerr := c.api.Node(it.e.Spec.node, (&api.QueryOptions{}).WithContext(ctx))
			if rerr != nil {
				return nil, fmt.Errorf("%w; reading node %s to see who holds it: %w", err, it.e.Spec.node, c.redact(rerr))
			}
			switch {
			case n == nil: // not a conflict (a permission denied?): as it is
				return nil, err
			case c.ownNode(n):
				keep = append(keep, it.takeOver())
			default:
				c.foreignFound(n)
			}
		}
		items = keep
	}
	return nil, nil
}

// claimed forgets, as foreign, the nodes the written items claimed.
func (c *Catalog) claimed(items []writeItem) {
	for _, it := range items {
		if it.claims() {
			c.foreignGone(it.e.Key)
		}
	}
}

// claims reports whether it creates a node (a new server's own node).
func (it writeItem) claims() bool {
	return it.kind == writeRegister && it.e.New && !it.e.Spec.shared()
}

// takeOver is it with its node claim replaced by a NodeSet: the node is
// this fleet's already.
func (it writeItem) takeOver() writeItem {
	e := *it.e
	e.New = false
	it.e = &e
	it.ops = slices.Clone(it.ops)
	op := *it.ops[0].Node
	op.Verb = api.NodeSet
	it.ops[0] = &api.TxnOp{Node: &op}
	return it
}
