package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// This file holds fakeCatalog, an in-memory Consul server implementing
// catalogAPI for the unit tests of catalog mode: the KV store with sessions
// and locks, the catalog (nodes, services, checks), transactions and
// blocking list queries, with one raft-like index bumped on every write.
// Its sessions, lock and test helpers are in catalog_fakelock_test.go.
//
// Where it simplifies: sessions never expire by themselves (a test calls
// ExpireSession), there is no lock-delay, blocking queries get no jitter,
// tombstones are never reaped, and Txn returns no Results.

// fakeKVPair is a KV entry. Values are replaced, never changed in place, so
// a shallow copy of the maps is a snapshot (Txn relies on it).
type fakeKVPair struct {
	Value                               []byte
	Session                             string
	CreateIndex, ModifyIndex, LockIndex uint64
}

type fakeNode struct {
	Address string
	Meta    map[string]string
}

// fakeRef names a service or check on a node.
type fakeRef struct{ Node, ID string }

// fakeState is what a transaction changes as a whole.
type fakeState struct {
	kv       map[string]*fakeKVPair
	tomb     map[string]uint64 // deleted key -> index of the delete
	kvIndex  uint64            // last KV write (the table index)
	sessions map[string]*api.SessionEntry
	nodes    map[string]*fakeNode
	services map[fakeRef]*api.AgentService
	checks   map[fakeRef]*api.HealthCheck
}

func (st *fakeState) clone() *fakeState {
	return &fakeState{kv: maps.Clone(st.kv), tomb: maps.Clone(st.tomb), kvIndex: st.kvIndex,
		sessions: maps.Clone(st.sessions), nodes: maps.Clone(st.nodes),
		services: maps.Clone(st.services), checks: maps.Clone(st.checks)}
}

// fakeFailure makes the calls of method fail: n times (n < 0: always),
// with err (nil: a transport error).
type fakeFailure struct {
	method string
	n      int
	err    error
}

// fakeConsulWait is Consul's wait when a blocking query sets no WaitTime.
const fakeConsulWait = 5 * time.Minute

// fakeCatalog is an in-memory Consul server; safe for concurrent use.
type fakeCatalog struct {
	t   testing.TB
	clk clock.Clock // blocking query waits run on it

	mu       sync.Mutex
	st       *fakeState
	index    uint64        // raft index: bumped by every write
	changed  chan struct{} // closed and replaced on every write
	nextSess int
	calls    map[string]int
	fails    []*fakeFailure
	txnFails []func(*api.TxnOp) bool
	deny     func(*api.TxnOp) error // a standing ACL refusal of txn ops (Deny)
	lockers  []*fakeCatLocker       // held locks, watched for loss
	applied  []string               // catalog and KV ops applied by Txn, in order
	// waitIndex is, by prefix, the highest WaitIndex a blocking ListKV
	// was called with: the leader's, which has read the list up to it.
	waitIndex map[string]uint64
	// refuseTxn, when set, may refuse a transaction before it is tried
	// (called with the lock held).
	refuseTxn func(api.TxnOps) error
}

var _ catalogAPI = (*fakeCatalog)(nil)

func newFakeCatalog(t testing.TB, clk clock.Clock) *fakeCatalog {
	return &fakeCatalog{t: t, clk: clock.OrReal(clk), changed: make(chan struct{}), calls: map[string]int{}, waitIndex: map[string]uint64{},
		st: &fakeState{kv: map[string]*fakeKVPair{}, tomb: map[string]uint64{}, sessions: map[string]*api.SessionEntry{},
			nodes: map[string]*fakeNode{}, services: map[fakeRef]*api.AgentService{}, checks: map[fakeRef]*api.HealthCheck{}}}
}

// beginLocked counts a call of method and returns its injected failure or
// the error of a done context.
func (f *fakeCatalog) beginLocked(method string, q interface{ Context() context.Context }) error {
	f.calls[method]++
	for i, fl := range f.fails {
		if fl.method != method {
			continue
		}
		if fl.n > 0 {
			if fl.n--; fl.n == 0 {
				f.fails = slices.Delete(f.fails, i, i+1)
			}
		}
		if fl.err != nil {
			return fl.err
		}
		return consultest.TransportError("/v1/" + strings.ToLower(method))
	}
	if err := q.Context().Err(); err != nil {
		return &url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/" + strings.ToLower(method), Err: err}
	}
	return nil
}

// bumpLocked records a write at index f.index+1: it wakes blocking queries
// and closes the lost channel of every lock whose key changed hands.
func (f *fakeCatalog) bumpLocked() uint64 {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
	f.lockers = slices.DeleteFunc(f.lockers, func(l *fakeCatLocker) bool {
		if e := f.st.kv[l.key]; e == nil || e.Session != l.session {
			close(l.lost)
			return true
		}
		return false
	})
	return f.index
}

// Txn applies ops all or nothing, as Consul does: every op is tried in
// order on a copy of the state and every failure is reported with its
// OpIndex; the copy is kept only when none failed.
func (f *fakeCatalog) Txn(ops api.TxnOps, q *api.QueryOptions) (bool, *api.TxnResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("Txn", q); err != nil {
		return false, nil, err
	}
	if f.refuseTxn != nil {
		if err := f.refuseTxn(ops); err != nil {
			return false, nil, err
		}
	}
	if len(ops) > maxTxnOps {
		return false, nil, api.StatusError{Code: 413, Body: fmt.Sprintf("Transaction contains too many operations (%d > %d)", len(ops), maxTxnOps)}
	}
	st, idx := f.st.clone(), f.index+1
	var inject func(*api.TxnOp) bool
	if len(f.txnFails) > 0 && slices.ContainsFunc(ops, f.txnFails[0]) {
		inject, f.txnFails = f.txnFails[0], f.txnFails[1:]
	}
	resp := &api.TxnResponse{}
	var applied []string
	for i, op := range ops {
		what, err := f.applyOp(st, op, idx)
		if err == nil && inject != nil && inject(op) {
			err, inject = errors.New("injected failure"), nil
		}
		if err == nil && f.deny != nil {
			err = f.deny(op)
		}
		if err != nil {
			resp.Errors = append(resp.Errors, &api.TxnError{OpIndex: i, What: err.Error()})
		}
		applied = append(applied, what)
	}
	if len(resp.Errors) > 0 {
		return false, resp, nil
	}
	f.st = st
	f.applied = append(f.applied, applied...)
	f.bumpLocked()
	return true, resp, nil
}

var (
	errFakeMissingNode    = errors.New("Missing node registration")
	errFakeMissingService = errors.New("Missing service registration")
)

// applyOp applies one op to st at index idx and names it for the log. An op
// the sink is not expected to send fails the test.
func (f *fakeCatalog) applyOp(st *fakeState, op *api.TxnOp, idx uint64) (string, error) {
	switch {
	case op.KV != nil:
		k := op.KV
		what := "kv " + string(k.Verb) + " " + k.Key
		e := st.kv[k.Key]
		switch k.Verb {
		case api.KVLock:
			if k.Session == "" {
				return what, errors.New("missing session")
			}
			if st.sessions[k.Session] == nil {
				return what, fmt.Errorf("invalid session %q", k.Session)
			}
			if e != nil && e.Session != "" && e.Session != k.Session {
				return what, fmt.Errorf("failed to lock key %q, lock is already held", k.Key)
			}
			st.lockKey(k.Key, slices.Clone(k.Value), k.Session, idx)
		case api.KVUnlock: // as Consul: the holder releases, the value is set
			if k.Session == "" {
				return what, errors.New("missing session")
			}
			if e == nil || e.Session != k.Session {
				return what, fmt.Errorf("failed to unlock key %q, lock isn't held, or is held by another session", k.Key)
			}
			st.kv[k.Key] = &fakeKVPair{Value: slices.Clone(k.Value), CreateIndex: e.CreateIndex, ModifyIndex: idx, LockIndex: e.LockIndex}
			st.kvIndex = idx
		case api.KVDeleteCAS: // as Consul: a missing key is no error
			if e == nil {
				break
			}
			if e.ModifyIndex != k.Index {
				return what, fmt.Errorf("failed to delete key %q, index is stale", k.Key)
			}
			delete(st.kv, k.Key)
			st.tomb[k.Key], st.kvIndex = idx, idx
		case api.KVDelete:
			if e != nil {
				delete(st.kv, k.Key)
				st.tomb[k.Key], st.kvIndex = idx, idx
			}
		case api.KVCheckSession:
			if e == nil {
				return what, fmt.Errorf("failed to check session, key %q doesn't exist", k.Key)
			}
			if e.Session != k.Session {
				return what, fmt.Errorf("failed session check for key %q, current session %q != %q", k.Key, e.Session, k.Session)
			}
		default:
			f.t.Errorf("fake catalog: unexpected KV verb %q", k.Verb)
			return what, fmt.Errorf("unsupported verb %q", k.Verb)
		}
		return what, nil
	case op.Node != nil:
		n := op.Node.Node
		what := "node " + string(op.Node.Verb) + " " + n.Node
		switch op.Node.Verb {
		case api.NodeSet:
			if n.Node == "" || n.Address == "" {
				return what, errors.New("Must provide node and address")
			}
			st.nodes[n.Node] = &fakeNode{Address: n.Address, Meta: maps.Clone(n.Meta)}
		case api.NodeCAS:
			if n.ModifyIndex != 0 {
				f.t.Errorf("fake catalog: NodeCAS of %s with index %d; only 0 (create if absent) is modelled", n.Node, n.ModifyIndex)
				return what, errors.New("unsupported index")
			}
			if n.Node == "" || n.Address == "" {
				return what, errors.New("Must provide node and address")
			}
			if st.nodes[n.Node] != nil {
				return what, fmt.Errorf("failed to set node %q, index is stale", n.Node)
			}
			st.nodes[n.Node] = &fakeNode{Address: n.Address, Meta: maps.Clone(n.Meta)}
		case api.NodeDelete:
			st.deleteNode(n.Node, idx)
		default:
			f.t.Errorf("fake catalog: unexpected node verb %q", op.Node.Verb)
			return what, fmt.Errorf("unsupported verb %q", op.Node.Verb)
		}
		return what, nil
	case op.Service != nil:
		s := op.Service
		what := "service " + string(s.Verb) + " " + s.Node + "/" + s.Service.ID
		if s.Verb == api.ServiceDelete {
			// As Consul: the service goes with its checks; deleting one
			// that does not exist is no error; the name is required.
			if s.Service.Service == "" {
				return what, errors.New("Must provide service name (Service.Service) when service ID is provided")
			}
			st.deleteService(s.Node, s.Service.ID)
			return what, nil
		}
		if s.Verb != api.ServiceSet {
			f.t.Errorf("fake catalog: unexpected service verb %q", s.Verb)
			return what, fmt.Errorf("unsupported verb %q", s.Verb)
		}
		if st.nodes[s.Node] == nil {
			return what, errFakeMissingNode
		}
		if s.Service.ID == "" || s.Service.Service == "" {
			return what, errors.New("Must provide service ID and name")
		}
		svc := consultest.CloneService(&s.Service)
		st.services[fakeRef{s.Node, svc.ID}] = svc
		return what, nil
	case op.Check != nil:
		c := op.Check.Check
		what := "check " + string(op.Check.Verb) + " " + c.Node + "/" + c.CheckID
		if op.Check.Verb == api.CheckDelete {
			// As Consul: vetted by service:write on the op's ServiceName
			// when it names a service (node:write on the node otherwise);
			// deleting a check that does not exist is no error.
			if svc := st.services[fakeRef{c.Node, c.ServiceID}]; c.ServiceID != "" && svc != nil && c.ServiceName != svc.Service {
				return what, fmt.Errorf("Permission denied: token lacks permission 'service:write' on %q", c.ServiceName)
			}
			delete(st.checks, fakeRef{c.Node, c.CheckID})
			return what, nil
		}
		if op.Check.Verb != api.CheckSet {
			f.t.Errorf("fake catalog: unexpected check verb %q", op.Check.Verb)
			return what, fmt.Errorf("unsupported verb %q", op.Check.Verb)
		}
		if st.nodes[c.Node] == nil {
			return what, errFakeMissingNode
		}
		if c.ServiceID != "" && st.services[fakeRef{c.Node, c.ServiceID}] == nil {
			return what, errFakeMissingService
		}
		// Consul vets a txn check op with service:write on its ServiceName
		// ("" when unset), so a token scoped to the service is refused.
		if svc := st.services[fakeRef{c.Node, c.ServiceID}]; c.ServiceID != "" && c.ServiceName != svc.Service {
			return what, fmt.Errorf("Permission denied: token lacks permission 'service:write' on %q", c.ServiceName)
		}
		if c.Status == "" {
			c.Status = api.HealthCritical
		}
		st.checks[fakeRef{c.Node, c.CheckID}] = &c
		return what, nil
	}
	f.t.Errorf("fake catalog: empty txn op %+v", op)
	return "empty", errors.New("empty operation")
}

// lockKey sets key to value held by session at idx.
func (st *fakeState) lockKey(key string, value []byte, session string, idx uint64) {
	e := st.kv[key]
	n := &fakeKVPair{Value: value, Session: session, CreateIndex: idx, ModifyIndex: idx, LockIndex: 1}
	if e != nil {
		n.CreateIndex, n.LockIndex = e.CreateIndex, e.LockIndex
		if e.Session != session {
			n.LockIndex++
		}
	}
	st.kv[key] = n
	delete(st.tomb, key)
	st.kvIndex = idx
}

// deleteNode deletes a node with its services and checks, and invalidates
// the sessions on it, as Consul does.
func (st *fakeState) deleteService(node, id string) {
	delete(st.services, fakeRef{node, id})
	for r, c := range st.checks {
		if r.Node == node && c.ServiceID == id {
			delete(st.checks, r)
		}
	}
}

func (st *fakeState) deleteNode(node string, idx uint64) {
	delete(st.nodes, node)
	for r := range st.services {
		if r.Node == node {
			delete(st.services, r)
		}
	}
	for r := range st.checks {
		if r.Node == node {
			delete(st.checks, r)
		}
	}
	for id, s := range st.sessions {
		if s.Node == node {
			st.destroySession(id, idx)
		}
	}
}

// destroySession removes a session; the keys it holds are deleted
// (Behavior delete) or released.
func (st *fakeState) destroySession(id string, idx uint64) {
	s := st.sessions[id]
	if s == nil {
		return
	}
	delete(st.sessions, id)
	for k, e := range st.kv {
		if e.Session != id {
			continue
		}
		if s.Behavior == api.SessionBehaviorDelete {
			delete(st.kv, k)
			st.tomb[k] = idx
		} else {
			n := *e
			n.Session, n.ModifyIndex = "", idx
			st.kv[k] = &n
		}
		st.kvIndex = idx
	}
}

// listIndex is the index of a KV list under prefix, as Consul computes it:
// the highest ModifyIndex of the keys under prefix or of their tombstones
// (so a delete moves it), else the KV table's index, and at least 1.
func (st *fakeState) listIndex(prefix string) uint64 {
	var idx uint64
	for k, e := range st.kv {
		if strings.HasPrefix(k, prefix) {
			idx = max(idx, e.ModifyIndex)
		}
	}
	for k, i := range st.tomb {
		if strings.HasPrefix(k, prefix) {
			idx = max(idx, i)
		}
	}
	if idx == 0 {
		idx = st.kvIndex
	}
	return max(idx, 1)
}

func (st *fakeState) list(prefix string) api.KVPairs {
	var out api.KVPairs
	for _, k := range slices.Sorted(maps.Keys(st.kv)) {
		if e := st.kv[k]; strings.HasPrefix(k, prefix) {
			out = append(out, &api.KVPair{Key: k, Value: slices.Clone(e.Value), Session: e.Session,
				CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex, LockIndex: e.LockIndex})
		}
	}
	return out
}

// ListKV lists the keys under prefix. With q.WaitIndex set it blocks, as a
// Consul blocking query, while the list's index is not above it: until a
// write moves it, q.WaitTime passes on the fake's clock (0: Consul's
// default of 5 minutes), or q's context is done.
func (f *fakeCatalog) ListKV(prefix string, q *api.QueryOptions) (api.KVPairs, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("ListKV", q); err != nil {
		return nil, nil, err
	}
	if q != nil {
		f.waitIndex[prefix] = max(f.waitIndex[prefix], q.WaitIndex)
	}
	var timeout <-chan time.Time
	for {
		idx := f.st.listIndex(prefix)
		if q == nil || q.WaitIndex == 0 || idx > q.WaitIndex {
			return f.st.list(prefix), &api.QueryMeta{LastIndex: idx}, nil
		}
		if timeout == nil {
			wait := q.WaitTime
			if wait <= 0 {
				wait = fakeConsulWait
			}
			t := f.clk.NewTimer(wait)
			defer t.Stop()
			timeout = t.C()
		}
		done := q.Context().Done()
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
			f.mu.Lock()
		case <-timeout:
			f.mu.Lock()
			return f.st.list(prefix), &api.QueryMeta{LastIndex: idx}, nil
		case <-done:
			f.mu.Lock()
			return nil, nil, &url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/kv/" + prefix, Err: q.Context().Err()}
		}
	}
}
