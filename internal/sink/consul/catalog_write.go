package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
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
			it.n = c.opCount(it)
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
	writeUpdate                    // the service (and the observed check, if not passing)
	writePass                      // the observed check, passing
	writeFail                      // the observed check, critical since e.Since
	writeRemove                    // the node (node per server) or the service with its checks
)

// opCount is how many operations it takes, without building them.
func (c *Catalog) opCount(it writeItem) int {
	switch it.kind {
	case writeRegister:
		n := 2
		if !it.e.Spec.shared() {
			n++ // the node
		}
		if c.cfg.Check != CheckNone {
			n++
		}
		return n
	case writeUpdate:
		if !it.e.Passing {
			return 2
		}
	}
	return 1
}

// ops builds the operations of it.
func (c *Catalog) ops(it writeItem) api.TxnOps {
	e := *it.e
	switch it.kind {
	case writeRegister:
		return c.registerOps(e)
	case writeUpdate:
		ops := api.TxnOps{c.serviceOp(e)}
		if !e.Passing {
			ops = append(ops, c.observedCheck(e, true, time.Time{}))
		}
		return ops
	case writePass:
		return api.TxnOps{c.observedCheck(e, true, time.Time{})}
	case writeFail:
		return api.TxnOps{c.observedCheck(e, false, e.Since)}
	default: // writeRemove
		if e.Spec.shared() {
			return api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: e.Spec.node, Service: api.AgentService{ID: e.Spec.svcID, Service: e.Spec.svc.Name}}}} // Consul wants the name too
		}
		return api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: e.Spec.node}}}}
	}
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
		return written, joinCapped(errs, maxErrsShown)
	}
	return written, nil
}

// txn runs one guarded transaction.
func (c *Catalog) txn(ctx context.Context, ops api.TxnOps) error {
	ok, resp, err := c.api.Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	c.metrics.txns.Inc()
	if err != nil {
		return consulError(fmt.Sprintf("txn of %d operations", len(ops)), c.redact(err), c.catalogRules)
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

// registerOps writes an entry whole: its node, its service and its checks.
// A claimed node (one the fleet does not hold yet) is created only if none
// of its name exists (NodeCAS with index 0; see txnItems).
func (c *Catalog) registerOps(e catalogEntry) api.TxnOps {
	var ops api.TxnOps
	if !e.Spec.shared() {
		nodeVerb := api.NodeSet
		if e.New {
			nodeVerb = api.NodeCAS
		}
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: nodeVerb, Node: api.Node{Node: e.Spec.node, Address: e.Spec.nodeAddr, Meta: e.Spec.nodeMeta}}})
	}
	ops = append(ops, c.serviceOp(e), c.observedCheck(e, true, time.Time{}))
	if c.cfg.Check != CheckNone {
		hostPort := net.JoinHostPort(e.Spec.svc.Address, strconv.Itoa(e.Spec.svc.Port))
		def := api.HealthCheckDefinition{
			IntervalDuration: c.cfg.CheckInterval,
			TimeoutDuration:  min(c.cfg.CheckInterval, 5*time.Second),
		}
		name := c.cfg.Check + " " + hostPort
		if c.cfg.Check == CheckTCP {
			def.TCP = hostPort
		} else {
			def.HTTP = "http://" + hostPort + c.cfg.HTTPPath
		}
		ops = append(ops, &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
			Node: e.Spec.node, CheckID: e.Spec.checkID(ProbeCheckID), Name: name, ServiceID: e.Spec.svcID, ServiceName: e.Spec.svc.Name, Status: api.HealthPassing,
			Notes: "run by consul-esm, where deployed", Definition: def,
		}}})
	}
	return ops
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

// txnACL is the *ACLError of the first operation of a rolled-back
// transaction that Consul refused for its ACLs, or nil.
func (c *Catalog) txnACL(op string, resp *api.TxnResponse) error {
	if resp == nil {
		return nil
	}
	for _, e := range resp.Errors {
		err := aclErrorText(fmt.Sprintf("%s: operation %d", op, e.OpIndex), e.What, errors.New(e.What), c.catalogRules)
		if isACL(err) {
			return err
		}
	}
	return nil
}
