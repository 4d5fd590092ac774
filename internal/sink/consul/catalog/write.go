package catalog

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// write applies plan p in transactions of at most 64 operations, each
// guarded by a check that this bridge's session still holds the lock, paced
// by c.pace (at most consul_parallel in flight), and updates current with what
// succeeded. It returns the catalog operations written. The operations of
// a transaction are built just before it is sent, so that a first write of
// 10,000 servers holds at most the transactions in flight, not 30,000
// operations.
func (c *Catalog) write(ctx context.Context, sid string, p catalogPlan, current map[string]catalogEntry) (int, error) {
	guard := &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: c.lockKey, Session: sid}}
	nodeWrites, err := c.ensureSharedNode(ctx, guard, p)
	if err != nil {
		return 0, err
	}
	items := make([]writeItem, 0, len(p.Register)+len(p.Update)+len(p.Pass)+len(p.Fail)+len(p.Remove))
	add := func(kind writeKind, es []catalogEntry) {
		for i := range es {
			it := writeItem{e: &es[i], kind: kind}
			// What it writes follows from what the catalog holds, read
			// here: the transactions update current as they succeed.
			var held *catalogSpec
			if cur, ok := current[es[i].Key]; ok {
				held = cur.Spec
			}
			it.parts = writePartsOf(it, held)
			it.n = it.parts.count()
			items = append(items, it)
		}
	}
	add(writeRegister, p.Register)
	add(writeUpdate, p.Update)
	add(writePass, p.Pass)
	add(writeFail, p.Fail)
	add(writeRemove, p.Remove)
	// Pack whole items into batches.
	var sends []txnBatch
	first, n := 0, 1
	for i, it := range items {
		if n+it.n > maxTxnOps {
			sends, first, n = append(sends, txnBatch{items: items[first:i:i]}), i, 1
		}
		n += it.n
	}
	if first < len(items) {
		sends = append(sends, txnBatch{items: items[first:]})
	}
	written, err := c.send(ctx, guard, sends, current)
	if err != nil {
		c.sharedChecked.Store(false) // the shared node may be what failed
		return nodeWrites + written, err
	}
	dropped, err := c.dropSharedNode(ctx, guard, p, current)
	return nodeWrites + written + dropped, err
}

// writeKind is what a write item does to its entry.
type writeKind int

const (
	writeRegister writeKind = iota // node (node per server), service, checks
	writeUpdate                    // what differs: the service, the app check (and the observed check, if not passing)
	writePass                      // the observed check, passing
	writeFail                      // the observed check, critical since e.Since
	writeRemove                    // the node (node per server) or the service with its checks
)

// writeParts are the operations of a write item, one bit each, in the
// order they are written: a check after its service.
type writeParts uint8

const (
	partNode        writeParts = 1 << iota // the server's own node (node per server)
	partService                            // its service
	partObserved                           // the observed check: passing, or critical since e.Since (writeFail)
	partApp                                // the app check, set
	partAppDelete                          // the app check, deleted: no observer runs app checks any more
	partProbeDelete                        // the consul-esm check of --consul-check, deleted
	partRemove                             // the node (node per server) or the service with its checks, deleted
)

func (p writeParts) count() int { return bits.OnesCount8(uint8(p)) }

// writePartsOf is what it writes, given the spec the catalog holds of its
// entry (nil: none). A registration writes the entry whole: its node, its
// service, its observed check, its app check (or deletes one it no longer
// has) and deletes a leftover consul-esm check. An update writes what
// differs of it: the service, the app check (on a transition of the
// fleet's verdict: one operation), the observed check if it was not
// passing, and the deletions.
func writePartsOf(it writeItem, held *catalogSpec) writeParts {
	e := it.e
	switch it.kind {
	case writePass, writeFail:
		return partObserved
	case writeRemove:
		return partRemove
	}
	var p writeParts
	switch {
	case e.Spec.app != nil && (it.kind == writeRegister || held == nil || !sameApp(held.app, e.Spec.app)):
		p |= partApp
	case e.Spec.app == nil && held != nil && held.app != nil:
		p |= partAppDelete
	}
	if held != nil && held.probe {
		p |= partProbeDelete
	}
	if it.kind == writeRegister {
		p |= partService | partObserved
		if !e.Spec.shared() {
			p |= partNode
		}
		return p
	}
	if held == nil || held.svcID != e.Spec.svcID || !held.svc.Equal(e.Spec.svc) {
		p |= partService
	}
	if !e.Passing {
		p |= partObserved
	}
	if p == 0 { // Compare found a difference that this does not see: write the service
		p = partService
	}
	return p
}

// ops builds the operations of it.
func (c *Catalog) ops(it writeItem) api.TxnOps {
	e := *it.e
	ops := make(api.TxnOps, 0, it.parts.count())
	if it.parts&partNode != 0 {
		ops = append(ops, c.nodeOp(e))
	}
	if it.parts&partService != 0 {
		ops = append(ops, c.serviceOp(e))
	}
	if it.parts&partObserved != 0 {
		if it.kind == writeFail {
			ops = append(ops, c.observedCheck(e, false, e.Since))
		} else {
			ops = append(ops, c.observedCheck(e, true, time.Time{}))
		}
	}
	if it.parts&partApp != 0 {
		ops = append(ops, c.appCheckOp(e))
	}
	if it.parts&partAppDelete != 0 {
		ops = append(ops, c.deleteCheckOp(e, AppCheckID))
	}
	if it.parts&partProbeDelete != 0 {
		ops = append(ops, c.deleteCheckOp(e, ProbeCheckID))
	}
	if it.parts&partRemove != 0 {
		if e.Spec.shared() {
			ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: e.Spec.node, Service: api.AgentService{ID: e.Spec.svcID, Service: e.Spec.svc.Name}}}) // Consul wants the name too
		} else {
			ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: e.Spec.node}}})
		}
	}
	return ops
}

// apply records in current that it was written.
func (it writeItem) apply(current map[string]catalogEntry) {
	e := *it.e
	switch it.kind {
	case writeRegister:
		e.New = false
		current[e.Key] = e
	case writeUpdate:
		e.Passing, e.Since = true, time.Time{}
		current[e.Key] = e
	case writePass:
		cur := current[e.Key]
		cur.Passing, cur.Since = true, time.Time{}
		current[e.Key] = cur
	case writeFail:
		current[e.Key] = e
	case writeRemove:
		delete(current, e.Key)
	}
}

// txnBatch is the items of one guarded transaction.
type txnBatch struct {
	items []writeItem
}

// maxRateLimitedTries bounds how often one batch is sent again after
// Consul refused it for its rate limit, before write gives up and the
// leader re-plans after its backoff.
const maxRateLimitedTries = 10

// send runs the batches as guarded transactions, paced by c.pace: a batch
// refused for Consul's rate limit goes back in the queue (after the pause
// the pacer imposes), anything else is an error of this write. It stops
// sending once a guard says this bridge no longer leads.
func (c *Catalog) send(ctx context.Context, guard *api.TxnOp, batches []txnBatch, current map[string]catalogEntry) (int, error) {
	type queued struct {
		txnBatch
		tries int
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		written int
		errs    []error
		again   []queued // refused for the rate limit, to send again
		queue   = make([]queued, 0, len(batches))
	)
	for _, b := range batches {
		queue = append(queue, queued{txnBatch: b})
	}
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ctx.Err() != nil || slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, errNotLeader) })
	}
	for len(queue) > 0 && !stopped() {
		for len(queue) > 0 && !stopped() {
			if c.pace.acquire(ctx) != nil {
				break
			}
			b := queue[0]
			queue = queue[1:]
			wg.Add(1)
			go func() {
				defer wg.Done()
				done, err := c.txnItems(ctx, guard, b.items)
				c.pace.release(err, ctx.Err() == nil)
				limited := c.countRateLimit("txn", err)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case limited && b.tries+1 < maxRateLimitedTries:
					b.tries++
					again = append(again, b)
				case err != nil:
					errs = append(errs, err)
				default:
					for _, it := range done {
						it.apply(current)
						written += it.n
					}
				}
			}()
			mu.Lock()
			queue, again = append(queue, again...), nil
			mu.Unlock()
		}
		wg.Wait()
		mu.Lock()
		queue, again = append(queue, again...), nil
		mu.Unlock()
	}
	if len(errs) > 0 {
		return written, consulclient.JoinCapped(errs, consulclient.MaxErrsShown)
	}
	return written, nil
}

// txn runs one guarded transaction.
func (c *Catalog) txn(ctx context.Context, ops api.TxnOps) error {
	ok, resp, err := c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	c.metrics.txns.Inc()
	if err != nil {
		return consulclient.OpError(fmt.Sprintf("txn of %d operations", len(ops)), c.redact(err), c.catalogRules)
	}
	if !ok {
		if err := c.txnACL(fmt.Sprintf("catalog write (txn of %d operations)", len(ops)), resp); err != nil {
			return err
		}
		if resp != nil {
			for _, e := range resp.Errors {
				if e.OpIndex == 0 {
					return fmt.Errorf("%w: %s", errNotLeader, e.What)
				}
			}
		}
		if resp == nil {
			return &txnRolledBack{n: len(ops)}
		}
		return &txnRolledBack{n: len(ops), errs: resp.Errors}
	}
	c.metrics.catalogWrites.Add(float64(len(ops) - 1))
	return nil
}

// txnErrors describes the errors of a failed transaction.
func txnErrors(resp *api.TxnResponse) string {
	if resp == nil || len(resp.Errors) == 0 {
		return "no reason given"
	}
	var b strings.Builder
	for i, e := range resp.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "operation %d: %s", e.OpIndex, e.What)
	}
	return b.String()
}

// nodeOp writes the server's own node (node per server). A claimed node
// (one the fleet does not hold yet) is created only if none of its name
// exists (NodeCAS with index 0; see txnItems).
func (c *Catalog) nodeOp(e catalogEntry) *api.TxnOp {
	verb := api.NodeSet
	if e.New {
		verb = api.NodeCAS
	}
	return &api.TxnOp{Node: &api.NodeTxnOp{Verb: verb, Node: api.Node{Node: e.Spec.node, Address: e.Spec.nodeAddr, Meta: e.Spec.nodeMeta}}}
}

// serviceOp sets the service of e.
func (c *Catalog) serviceOp(e catalogEntry) *api.TxnOp {
	s := e.Spec
	return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: s.node, Service: api.AgentService{
		ID: s.svcID, Service: s.svc.Name, Address: s.svc.Address, Port: s.svc.Port, Tags: s.svc.Tags, Meta: s.svc.Meta,
	}}}
}

// observedCheck sets the observed check of e: passing, or critical since t.
func (c *Catalog) observedCheck(e catalogEntry, passing bool, since time.Time) *api.TxnOp {
	chk := api.HealthCheck{
		Node: e.Spec.node, CheckID: e.Spec.checkID(ObservedCheckID), Name: "observed by udp-discovery-bridge", ServiceID: e.Spec.svcID,
		ServiceName: e.Spec.svc.Name, Status: api.HealthPassing, Output: "observed by a live bridge",
	}
	if !passing {
		chk.Status, chk.Output = api.HealthCritical, unobservedOutput(since)
	}
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: chk}}
}

// appCheckOp sets the app check of e (e.Spec.app): the fleet's verdict
// on its app, which no agent and no consul-esm runs (it has no
// definition); the leader writes it on each transition of the verdict.
func (c *Catalog) appCheckOp(e catalogEntry) *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: e.Spec.node, CheckID: e.Spec.checkID(AppCheckID), Name: appCheckName, ServiceID: e.Spec.svcID, ServiceName: e.Spec.svc.Name,
		Status: e.Spec.app.status, Output: e.Spec.app.output,
		Notes: "the bridges' app check (app_check): passing while at least one live bridge's check passes",
	}}}
}

// deleteCheckOp deletes e's check named base. It names the service too:
// Consul vets a check operation of a service by service:write on the
// service's name, as it does the check's writes (the same policy rule).
func (c *Catalog) deleteCheckOp(e catalogEntry, base string) *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckDelete, Check: api.HealthCheck{
		Node: e.Spec.node, CheckID: e.Spec.checkID(base), ServiceID: e.Spec.svcID, ServiceName: e.Spec.svc.Name,
	}}}
}

// txnACL is the *ACLError of the first operation of a rolled-back
// transaction that Consul refused for its ACLs, or nil.
func (c *Catalog) txnACL(op string, resp *api.TxnResponse) error {
	if resp == nil {
		return nil
	}
	for _, e := range resp.Errors {
		err := consulclient.ACLErrorText(fmt.Sprintf("%s: operation %d", op, e.OpIndex), e.What, errors.New(e.What), c.catalogRules)
		if consulclient.IsACL(err) {
			return err
		}
	}
	return nil
}
