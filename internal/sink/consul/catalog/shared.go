package catalog

// The fleet's shared node (consul_catalog_layout shared-node): created
// before services are written on it, never taken from someone else, and
// deleted once a fleet that moved to a node per server emptied it.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// dropSharedNode deletes the fleet's shared node once p removed the last
// server on it while the fleet is not in the shared-node layout (it moved
// to a node per server). It returns the operations it wrote.
func (c *Catalog) dropSharedNode(ctx context.Context, guard *api.TxnOp, p catalogPlan, current map[string]catalogEntry) (int, error) {
	onShared := func(e catalogEntry) bool { return e.Spec.shared() }
	if c.cfg.Catalog.Layout == LayoutSharedNode || !slices.ContainsFunc(p.Remove, onShared) {
		return 0, nil
	}
	for _, e := range current {
		if e.Spec.shared() {
			return 0, nil
		}
	}
	name := SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix)
	op := &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: name}}}
	if err := c.txn(ctx, api.TxnOps{guard, op}); err != nil {
		return 0, fmt.Errorf("delete the fleet's emptied shared node %s: %w", name, err)
	}
	c.log.Info().Str("node", name).Msg("deleted the fleet's shared node: its last server is gone, and consul_catalog_layout is node-per-server")
	return 1, nil
}

// sharedNodeInWay is the error of a write that found the fleet's shared
// node held by someone else.
type sharedNodeInWay struct{ node, owner string }

func (e *sharedNodeInWay) Error() string {
	return fmt.Sprintf("the fleet's shared node %s belongs to someone else (%s): never overwritten, so no server is registered until it is gone; "+
		"give this fleet another consul_kv_prefix, or set consul_catalog_layout node-per-server", e.node, e.owner)
}

// sharedNodeAddr is the address of the fleet's shared node: the servers'
// services carry their own addresses, which is what lookups return (DNS
// and the health API); consul-k8s's catalog sync gives its synthetic node
// the same.
const sharedNodeAddr = "127.0.0.1"

// ensureSharedNode makes sure, before p writes services on it, that the
// fleet's shared node exists with its address and meta: it creates it if
// no node of its name exists (NodeCAS with index 0, so that a node created
// meanwhile is never overwritten), sets it again if it is the fleet's but
// differs, and refuses to write when it is someone else's (logged once,
// counted as a node in the way, checked again at every resync). It returns
// the operations it wrote.
func (c *Catalog) ensureSharedNode(ctx context.Context, guard *api.TxnOp, p catalogPlan) (int, error) {
	onShared := func(e catalogEntry) bool { return e.Spec.shared() }
	if c.sharedChecked.Load() || (!slices.ContainsFunc(p.Register, onShared) && !slices.ContainsFunc(p.Update, onShared)) {
		return 0, nil
	}
	name := SharedNodeName(c.cfg.Service, c.cfg.Catalog.KVPrefix)
	meta := c.shape().sharedNodeMeta()
	n, err := c.api.Node(name, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, consulclient.OpError("read the fleet's shared node "+name, c.redact(err), c.catalogRules)
	}
	verb := api.NodeSet
	switch {
	case n == nil:
		verb = api.NodeCAS // ModifyIndex 0: only if no node of the name exists
	case !c.ownNode(n):
		c.foreignFound(n)
		return 0, &sharedNodeInWay{node: name, owner: ownerOf(n.Meta)}
	case n.Address == sharedNodeAddr && maps.Equal(n.Meta, meta):
		c.foreignGone(name)
		c.sharedChecked.Store(true)
		return 0, nil
	}
	op := &api.TxnOp{Node: &api.NodeTxnOp{Verb: verb, Node: api.Node{Node: name, Address: sharedNodeAddr, Meta: meta}}}
	if err := c.txn(ctx, api.TxnOps{guard, op}); err != nil {
		return 0, fmt.Errorf("write the fleet's shared node %s: %w", name, err)
	}
	c.foreignGone(name)
	c.sharedChecked.Store(true)
	return 1, nil
}
