package catalog

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// Sessions, catalog reads, the lock and the test helpers of fakeCatalog
// (fake_test.go).

// RegisterNode registers (or updates) a node. Only the node part of a
// registration is supported: the sink registers nothing else this way.
func (f *fakeCatalog) RegisterNode(reg *api.CatalogRegistration, q *api.WriteOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("RegisterNode", q); err != nil {
		return err
	}
	if reg.Service != nil || reg.Check != nil || len(reg.Checks) > 0 {
		f.t.Errorf("fake catalog: unexpected service or check in node registration %+v", reg)
	}
	if reg.Node == "" || reg.Address == "" {
		return api.StatusError{Code: 400, Body: "Must provide node and address"}
	}
	f.st.nodes[reg.Node] = &fakeNode{Address: reg.Address, Meta: maps.Clone(reg.NodeMeta)}
	f.bumpLocked()
	return nil
}

// CreateSession creates a session on an existing node, with Consul's TTL
// bounds and default behavior (release).
func (f *fakeCatalog) CreateSession(se *api.SessionEntry, q *api.WriteOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("CreateSession", q); err != nil {
		return "", err
	}
	if f.st.nodes[se.Node] == nil {
		return "", api.StatusError{Code: 500, Body: fmt.Sprintf("Missing node registration %q", se.Node)}
	}
	if ttl, err := time.ParseDuration(se.TTL); se.TTL != "" && (err != nil || ttl < 10*time.Second || ttl > 24*time.Hour) {
		return "", api.StatusError{Code: 400, Body: fmt.Sprintf("Session TTL '%s' should be between [10s=24h0m0s]", se.TTL)}
	}
	f.nextSess++
	s := *se
	s.ID = fmt.Sprintf("%08x-0000-4000-8000-%012x", f.nextSess, f.nextSess)
	if s.Behavior == "" {
		s.Behavior = api.SessionBehaviorRelease
	}
	s.CreateIndex = f.bumpLocked()
	f.st.sessions[s.ID] = &s
	return s.ID, nil
}

// RenewSession returns the session, or (nil, nil) when it is gone, which
// is what consul/api returns for Consul's 404.
func (f *fakeCatalog) RenewSession(id string, q *api.WriteOptions) (*api.SessionEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("RenewSession", q); err != nil {
		return nil, err
	}
	s := f.st.sessions[id]
	if s == nil {
		return nil, nil
	}
	c := *s
	return &c, nil
}

// DestroySession destroys a session (unknown: no error, as Consul).
func (f *fakeCatalog) DestroySession(id string, q *api.WriteOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("DestroySession", q); err != nil {
		return err
	}
	f.st.destroySession(id, f.index+1)
	f.bumpLocked()
	return nil
}

func (f *fakeCatalog) NodeSessions(node string, q *api.QueryOptions) ([]*api.SessionEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("NodeSessions", q); err != nil {
		return nil, err
	}
	var out []*api.SessionEntry
	for _, id := range slices.Sorted(maps.Keys(f.st.sessions)) {
		if s := *f.st.sessions[id]; s.Node == node {
			out = append(out, &s)
		}
	}
	return out, nil
}

// ServiceEntries returns the instances of service whose meta match the
// filter, which must have exactly the shape of ownedFilterCatalog; any
// other filter fails the test. Each comes with its node and the checks of
// the node and of the service.
func (f *fakeCatalog) ServiceEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) error {
	out, err := f.serviceEntries(service, q)
	for _, e := range out {
		each(e)
	}
	return err
}

func (f *fakeCatalog) serviceEntries(service string, q *api.QueryOptions) ([]*api.ServiceEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("ServiceEntries", q); err != nil {
		return nil, err
	}
	return f.entriesLocked(service, q)
}

// entriesLocked is serviceEntries once the call is counted.
func (f *fakeCatalog) entriesLocked(service string, q *api.QueryOptions) ([]*api.ServiceEntry, error) {
	managedBy, fleet, err := parseOwnedFilterCatalog(q.Filter)
	if err != nil {
		f.t.Errorf("fake catalog: unexpected filter %s: %v", q.Filter, err)
		return nil, api.StatusError{Code: 400, Body: "Failed to create boolean expression evaluator: " + err.Error()}
	}
	refs := slices.SortedFunc(maps.Keys(f.st.services), func(a, b fakeRef) int {
		return strings.Compare(a.Node+"/"+a.ID, b.Node+"/"+b.ID)
	})
	var out []*api.ServiceEntry
	for _, r := range refs {
		s := f.st.services[r]
		if s.Service != service || s.Meta[consulclient.MetaManagedBy] != managedBy || s.Meta[MetaFleet] != fleet {
			continue
		}
		n := f.st.nodes[r.Node]
		e := &api.ServiceEntry{Node: &api.Node{Node: r.Node, Address: n.Address, Meta: maps.Clone(n.Meta)}, Service: consultest.CloneService(s)}
		for _, cr := range slices.SortedFunc(maps.Keys(f.st.checks), func(a, b fakeRef) int { return strings.Compare(a.ID, b.ID) }) {
			if c := *f.st.checks[cr]; cr.Node == r.Node && (c.ServiceID == "" || c.ServiceID == s.ID) {
				e.Checks = append(e.Checks, &c)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

var _ passingAPI = (*fakeCatalog)(nil)

// PassingEntries returns the instances ServiceEntries returns whose every
// check (the node's and the service's) passes, as Consul's ?passing. With
// q.WaitIndex set it blocks, as a Consul blocking query, while the fake's
// index is not above it: until any write, q.WaitTime passes on the fake's
// clock (0: Consul's default of 5 minutes), or q's context is done. The
// index is the fake's raft index (Consul's is the highest of the service's
// tables, so it may wake the query more often, as Consul may).
func (f *fakeCatalog) PassingEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) (*api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("PassingEntries", q); err != nil {
		return nil, err
	}
	if q.WaitIndex != 0 && f.index <= q.WaitIndex {
		wait := q.WaitTime
		if wait <= 0 {
			wait = fakeConsulWait
		}
		t := f.clk.NewTimer(wait)
		defer t.Stop()
	wait:
		for f.index <= q.WaitIndex {
			ch := f.changed
			f.mu.Unlock()
			select {
			case <-ch:
				f.mu.Lock()
			case <-t.C():
				f.mu.Lock()
				break wait
			case <-q.Context().Done():
				f.mu.Lock()
				return nil, &url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/health/service/" + service, Err: q.Context().Err()}
			}
		}
	}
	out, err := f.entriesLocked(service, q)
	if err != nil {
		return nil, err
	}
	for _, e := range out {
		if !slices.ContainsFunc(e.Checks, func(c *api.HealthCheck) bool { return c.Status != api.HealthPassing }) {
			each(e)
		}
	}
	return &api.QueryMeta{LastIndex: f.index}, nil
}

// Node returns the node named node (nil when there is none).
func (f *fakeCatalog) Node(node string, q *api.QueryOptions) (*api.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("Node", q); err != nil {
		return nil, err
	}
	n := f.st.nodes[node]
	if n == nil {
		return nil, nil
	}
	return &api.Node{Node: node, Address: n.Address, Meta: maps.Clone(n.Meta)}, nil
}

// parseOwnedFilterCatalog parses `Service.Meta["managed-by"] == L1 and
// Service.Meta["bridge-fleet"] == L2` (L: a go-bexpr string literal).
func parseOwnedFilterCatalog(filter string) (managedBy, fleet string, err error) {
	rest, ok := strings.CutPrefix(filter, `Service.Meta["managed-by"] == `)
	if !ok {
		return "", "", errors.New(`want Service.Meta["managed-by"] == ... first`)
	}
	if managedBy, rest, err = consultest.CutFilterLiteral(rest); err != nil {
		return "", "", err
	}
	if rest, ok = strings.CutPrefix(rest, ` and Service.Meta["bridge-fleet"] == `); !ok {
		return "", "", errors.New(`want and Service.Meta["bridge-fleet"] == ... second`)
	}
	if fleet, rest, err = consultest.CutFilterLiteral(rest); err != nil {
		return "", "", err
	}
	if rest != "" {
		return "", "", fmt.Errorf("trailing %q", rest)
	}
	return managedBy, fleet, nil
}

// Lock returns a lock on opts.Key held by opts.Session.
func (f *fakeCatalog) Lock(opts *api.LockOptions) (consulclient.Locker, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.beginLocked("Lock", (*api.QueryOptions)(nil)); err != nil {
		return nil, err
	}
	if opts.Key == "" || opts.Session == "" {
		f.t.Errorf("fake catalog: lock without key or session: %+v", opts)
		return nil, errors.New("missing key or session")
	}
	return &fakeCatLocker{f: f, key: opts.Key, session: opts.Session, value: slices.Clone(opts.Value)}, nil
}

// fakeCatLocker is a lock on a key of the fake, like *api.Lock with a
// session of its own: Lock waits while another session holds the key and
// acquires it with the session (so KVCheckSession sees the holder); the
// lost channel is closed when the key changes hands or goes away.
type fakeCatLocker struct {
	f            *fakeCatalog
	key, session string
	value        []byte
	held         bool // guarded by f.mu, as is lost
	lost         chan struct{}
}

func (l *fakeCatLocker) Lock(stopCh <-chan struct{}) (<-chan struct{}, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["locker.Lock"]++
	if l.held {
		return nil, api.ErrLockHeld
	}
	for {
		if f.st.sessions[l.session] == nil {
			return nil, fmt.Errorf("failed to acquire lock: %w", api.StatusError{Code: 500, Body: fmt.Sprintf("invalid session %q", l.session)})
		}
		if e := f.st.kv[l.key]; e == nil || e.Session == "" || e.Session == l.session {
			f.st.lockKey(l.key, slices.Clone(l.value), l.session, f.index+1)
			l.held, l.lost = true, make(chan struct{})
			f.lockers = append(f.lockers, l)
			f.bumpLocked()
			return l.lost, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
			f.mu.Lock()
		case <-stopCh:
			f.mu.Lock()
			return nil, nil
		}
	}
}

// Unlock releases the key if this session still holds it.
func (l *fakeCatLocker) Unlock() error {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["locker.Unlock"]++
	if !l.held {
		return api.ErrLockNotHeld
	}
	l.held = false
	if i := slices.Index(f.lockers, l); i >= 0 {
		f.lockers = slices.Delete(f.lockers, i, i+1)
		close(l.lost)
	}
	if e := f.st.kv[l.key]; e != nil && e.Session == l.session {
		n := *e
		n.Session, n.ModifyIndex = "", f.index+1
		f.st.kv[l.key], f.st.kvIndex = &n, f.index+1
		f.bumpLocked()
	}
	return nil
}

// --- test helpers ---

// Count returns the calls of a method ("Txn", "ListKV", ..., and
// "locker.Lock", "locker.Unlock"), failed ones included.
func (f *fakeCatalog) Count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// CaughtUp reports whether a blocking read of the list under prefix has
// started from the list's index now or later: its reader (the leader, for
// the observations) has read everything written under prefix so far, and
// acted on it, before it waited again.
func (f *fakeCatalog) CaughtUp(prefix string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waitIndex[prefix] >= f.st.listIndex(prefix)
}

// FailNext makes the next n calls of method fail with err (nil: a
// transport error; n < 0: always).
func (f *fakeCatalog) FailNext(method string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = append(f.fails, &fakeFailure{method: method, n: n, err: err})
}

// Heal drops the injected failures of method.
func (f *fakeCatalog) Heal(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = slices.DeleteFunc(f.fails, func(fl *fakeFailure) bool { return fl.method == method })
}

// FailTxnOn makes the next transaction with an op matching match fail at
// that op (rolled back, reported in TxnResponse.Errors).
func (f *fakeCatalog) FailTxnOn(match func(*api.TxnOp) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txnFails = append(f.txnFails, match)
}

// ExpireSession invalidates a session as a lapsed TTL does.
func (f *fakeCatalog) ExpireSession(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.sessions[id] == nil {
		f.t.Errorf("fake catalog: expire unknown session %s", id)
	}
	f.st.destroySession(id, f.index+1)
	f.bumpLocked()
}

// SessionNamed returns the ID of the live session with name ("" if none).
func (f *fakeCatalog) SessionNamed(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, s := range f.st.sessions {
		if s.Name == name {
			return id
		}
	}
	return ""
}

// PutKV sets key to value held by session (which must exist), unchecked.
func (f *fakeCatalog) PutKV(key string, value []byte, session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.lockKey(key, value, session, f.index+1)
	f.bumpLocked()
}

// KV returns the pair at key.
func (f *fakeCatalog) KV(key string) (fakeKVPair, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.st.kv[key]
	if !ok {
		return fakeKVPair{}, false
	}
	return *e, true
}

// Keys returns the keys under prefix, sorted.
func (f *fakeCatalog) Keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.st.list(prefix) {
		out = append(out, p.Key)
	}
	return out
}

// PutService registers a node, a service on it and a passing check behind
// the sink's back (someone else's instance).
func (f *fakeCatalog) PutService(node, addr string, svc api.AgentService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.nodes[node] = &fakeNode{Address: addr}
	f.st.services[fakeRef{node, svc.ID}] = consultest.CloneService(&svc)
	f.st.checks[fakeRef{node, "service:" + svc.ID}] = &api.HealthCheck{Node: node, CheckID: "service:" + svc.ID,
		ServiceID: svc.ID, ServiceName: svc.Service, Status: api.HealthPassing}
	f.bumpLocked()
}

// PutNode registers a node with meta behind the sink's back.
func (f *fakeCatalog) PutNode(node, addr string, meta map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.nodes[node] = &fakeNode{Address: addr, Meta: maps.Clone(meta)}
	f.bumpLocked()
}

// DeleteNode deletes a node with its services and checks behind the sink's
// back.
func (f *fakeCatalog) DeleteNode(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.deleteNode(node, f.index+1)
	f.bumpLocked()
}

// Nodes returns the node names, sorted.
func (f *fakeCatalog) Nodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.st.nodes))
}

// Entry returns the node, its service svcID and its check checkID.
func (f *fakeCatalog) Entry(node, svcID, checkID string) (n fakeNode, s api.AgentService, c api.HealthCheck, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	np, sp, cp := f.st.nodes[node], f.st.services[fakeRef{node, svcID}], f.st.checks[fakeRef{node, checkID}]
	if np == nil || sp == nil || cp == nil {
		return n, s, c, false
	}
	return *np, *consultest.CloneService(sp), *cp, true
}

// Applied returns the ops applied by successful transactions so far, e.g.
// "node set x", "node cas x", "service set x/id", "check set x/id", "kv lock key".
func (f *fakeCatalog) Applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

// Catalog describes every node, service and check, one sorted line each
// (to compare the catalog before and after).
func (f *fakeCatalog) Catalog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n, v := range f.st.nodes {
		out = append(out, fmt.Sprintf("node %s %s %v", n, v.Address, v.Meta))
	}
	for r, s := range f.st.services {
		out = append(out, fmt.Sprintf("service %s/%s %s %s:%d %v %v", r.Node, r.ID, s.Service, s.Address, s.Port, s.Tags, s.Meta))
	}
	for r, c := range f.st.checks {
		out = append(out, fmt.Sprintf("check %s/%s %s %s", r.Node, r.ID, c.Status, c.Output))
	}
	slices.Sort(out)
	return out
}

// Deny makes every txn op for which fn returns an error fail with it, until
// Deny(nil): a token's policy lacking a rule.
func (f *fakeCatalog) Deny(fn func(*api.TxnOp) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny = fn
}
