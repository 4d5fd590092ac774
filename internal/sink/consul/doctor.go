package consul

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
)

// Finding is the outcome of one operation Doctor tried.
type Finding struct {
	// Op says what the bridge needs to do, e.g. "write a server's node".
	Op string
	// OK is true when Consul allowed it.
	OK bool
	// Rule is the missing ACL rule (policy HCL) when Consul refused it for
	// one; empty otherwise.
	Rule string
	// Err is why it failed (nil when OK).
	Err error
}

// doctorServer is the server Doctor pretends to register (never written:
// its transactions roll back).
var doctorServer = netip.MustParseAddrPort("192.0.2.1:8000") // TEST-NET-1

// Doctor tries, with cfg's client and token, each Consul operation the
// sink needs in its mode, and changes nothing it does not own: catalog
// writes are sent in transactions that end with an operation sure to fail
// (a check-index on a key that does not exist), so they roll back; Consul
// vets every operation's ACL before it applies any, so a missing rule
// shows as "Permission denied" on that operation. It may create and
// destroy a session on the fleet's node (registering that node when it is
// missing) and write and delete a key <consul_kv_prefix>/doctor/<bridge_id>
// (catalog mode), or create and destroy a session (agent mode with
// consul_lock): those are the bridge's own.
func Doctor(ctx context.Context, cfg Config) ([]Finding, error) {
	cfg = cfg.withDefaults()
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	d := &doctor{c: client.API, redact: client.Redact, cfg: cfg, ctx: ctx, rules: exactRule}
	if cfg.Mode == ModeCatalog {
		c := &Catalog{cfg: cfg}
		d.rules = c.catalogRules
		d.catalog()
	} else {
		d.agent()
	}
	return d.out, nil
}

type doctor struct {
	c      *api.Client
	redact func(error) error
	cfg    Config
	ctx    context.Context
	rules  rulePrefixes
	out    []Finding
}

func (d *doctor) add(op string, err error) {
	f := Finding{Op: op, OK: err == nil, Err: err}
	var ae *ACLError
	if errors.As(err, &ae) {
		f.Rule = ae.Rule
	}
	d.out = append(d.out, f)
}

// sentinel is an operation sure to fail: a check-index on a key that does
// not exist, under the fleet's prefix (agent mode, which has none: the
// default one of its service).
func (d *doctor) sentinel() *api.TxnOp {
	prefix := d.cfg.Catalog.KVPrefix
	if d.cfg.Mode != ModeCatalog {
		prefix = DefaultKVPrefix(d.cfg.Service)
	}
	key := path.Join(prefix, "doctor", "never-written")
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: key, Index: 1}}
}

// dryTxn sends ops followed by the sentinel and reports whether Consul's
// ACLs allowed ops: nil when the transaction failed only for other reasons
// (it always rolls back).
func (d *doctor) dryTxn(op string, ops ...*api.TxnOp) error {
	all := append(append(api.TxnOps{}, ops...), d.sentinel())
	ok, resp, _, err := d.c.Txn().Txn(all, (&api.QueryOptions{}).WithContext(d.ctx))
	if err != nil {
		return consulError(op, d.redact(err), d.rules)
	}
	if ok {
		return fmt.Errorf("consul %s: the transaction did not roll back", op) // cannot happen: the sentinel fails
	}
	for _, e := range resp.Errors {
		if e.OpIndex >= len(ops) {
			continue // the sentinel: refused or failed, either way the txn rolled back
		}
		if err := aclErrorText(op, e.What, errors.New(e.What), d.rules); isACL(err) {
			return err
		}
	}
	return nil
}

// catalog checks what catalog mode needs.
func (d *doctor) catalog() {
	sh := (&Catalog{cfg: d.cfg}).shape()
	e := sh.entryFor(doctorServer, fleet.Observed{Bridges: 1})
	c := &Catalog{cfg: d.cfg}
	d.add("read this fleet's catalog entries (service "+d.cfg.Service+")", d.readService())
	if e.Spec.shared() {
		d.add("write the fleet's shared node ("+e.Spec.node+")", d.dryTxn("write node "+e.Spec.node,
			&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: e.Spec.node, Address: sharedNodeAddr, Meta: sh.sharedNodeMeta()}}}))
	} else {
		d.add("write a server's node ("+e.Spec.node+")", d.dryTxn("write node "+e.Spec.node,
			&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: e.Spec.node, Address: e.Spec.nodeAddr, Meta: e.Spec.nodeMeta}}}))
	}
	d.add("write a server's service ("+d.cfg.Service+")", d.dryTxn("write service "+e.Spec.svcID, c.serviceOp(e)))
	d.add("write a server's observed check", d.dryTxn("write check "+e.Spec.checkID(ObservedCheckID)+" of "+e.Spec.svcID, c.observedCheck(e, true, time.Time{})))
	app := sh.entryFor(doctorServer, fleet.Observed{Bridges: 1, Health: endpoint.Failing, Output: "bridge doctor"})
	d.add("write and delete a server's app check", d.dryTxn("write and delete check "+e.Spec.checkID(AppCheckID)+" of "+e.Spec.svcID,
		c.appCheckOp(app), c.deleteCheckOp(app, AppCheckID)))
	remove := writeItem{e: &e, kind: writeRemove, parts: partRemove}
	if e.Spec.shared() {
		d.add("remove a server's service", d.dryTxn("delete service "+e.Spec.svcID, c.ops(remove)...))
	} else {
		d.add("remove a server's node", d.dryTxn("delete node "+e.Spec.node, c.ops(remove)...))
	}

	node := bridgesNode(d.cfg.Catalog.KVPrefix)
	w := (&api.WriteOptions{}).WithContext(d.ctx)
	nodeErr := d.dryTxn("register node "+node, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: "127.0.0.1",
		Meta: map[string]string{MetaManagedBy: ManagedByValue, MetaFleet: d.cfg.Catalog.KVPrefix}}}})
	d.add("register the fleet's node ("+node+")", nodeErr)
	n, _, err := d.c.Catalog().Node(node, (&api.QueryOptions{}).WithContext(d.ctx))
	exists := err == nil && n != nil
	if !exists && nodeErr == nil {
		_, err := d.c.Catalog().Register(&api.CatalogRegistration{Node: node, Address: "127.0.0.1",
			NodeMeta: map[string]string{MetaManagedBy: ManagedByValue, MetaFleet: d.cfg.Catalog.KVPrefix}}, w)
		exists = err == nil
	}
	var sid string
	if exists {
		sid, _, err = d.c.Session().CreateNoChecks(&api.SessionEntry{Name: sessionName(d.cfg.BridgeID) + " doctor", Node: node,
			TTL: "10s", Behavior: api.SessionBehaviorDelete}, w)
		d.add("create a session on the fleet's node", consulErrorOrNil("create session on node "+node, d.redact, err, d.rules))
	} else {
		d.add("create a session on the fleet's node", fmt.Errorf("not tried: the fleet's node %s is not registered and cannot be", node))
	}
	key := path.Join(d.cfg.Catalog.KVPrefix, "doctor", d.cfg.BridgeID)
	p := &api.KVPair{Key: key, Value: []byte("bridge doctor"), Session: sid}
	var kvErr error
	if sid != "" {
		_, _, kvErr = d.c.KV().Acquire(p, w)
	} else {
		_, kvErr = d.c.KV().Put(p, w)
	}
	if kvErr == nil {
		_, kvErr = d.c.KV().Delete(key, w)
	}
	d.add("write and delete keys under "+d.cfg.Catalog.KVPrefix+"/", consulErrorOrNil("write key "+key, d.redact, kvErr, d.rules))
	_, _, err = d.c.KV().List(d.cfg.Catalog.KVPrefix+"/obs/", (&api.QueryOptions{}).WithContext(d.ctx))
	d.add("read the observations under "+d.cfg.Catalog.KVPrefix+"/obs/", consulErrorOrNil("list "+d.cfg.Catalog.KVPrefix+"/obs/", d.redact, err, d.rules))
	if sid != "" {
		_, _ = d.c.Session().Destroy(sid, w)
	}
}

// readService reads the service's instances. Consul leaves out what a
// token may not read instead of refusing (other owners' instances may be
// left out rightly), so only an unknown token or a transport error shows
// here; the write checks find a missing node or service rule.
func (d *doctor) readService() error {
	_, _, err := d.c.Health().Service(d.cfg.Service, "", false, (&api.QueryOptions{}).WithContext(d.ctx))
	return consulErrorOrNil("read service "+d.cfg.Service, d.redact, err, d.rules)
}

// agent checks what agent mode needs: the bridge's own service and the
// servers' service (sent as catalog transactions that roll back: Consul
// vets them with the same service:write the agent endpoint asks for), and
// with consul_lock the lock key and a session.
func (d *doctor) agent() {
	node := "udp-discovery-bridge-doctor" // never written: the txn rolls back
	svc := func(name, id string) *api.TxnOp {
		return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{ID: id, Service: name}}}
	}
	d.add("register the bridge's own service ("+BridgeServiceName+")", d.dryTxn("register service "+BridgeServiceName, svc(BridgeServiceName, BridgeServiceName+"-"+d.cfg.BridgeID)))
	id := ServiceID(d.cfg.Service, doctorServer)
	d.add("register servers (service "+d.cfg.Service+")", d.dryTxn("register service "+d.cfg.Service, svc(d.cfg.Service, id)))
	if d.cfg.Agent.LockKey == "" {
		return
	}
	d.add("write the lock key "+d.cfg.Agent.LockKey, d.dryTxn("write key "+d.cfg.Agent.LockKey,
		&api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: d.cfg.Agent.LockKey, Value: []byte(d.cfg.BridgeID)}}))
	w := (&api.WriteOptions{}).WithContext(d.ctx)
	sid, _, err := d.c.Session().CreateNoChecks(&api.SessionEntry{Name: "udp-discovery-bridge " + d.cfg.BridgeID + " doctor", TTL: "10s"}, w)
	d.add("create a session on the agent's node", consulErrorOrNil("create session", d.redact, err, d.rules))
	if sid != "" {
		_, _ = d.c.Session().Destroy(sid, w)
	}
}

func consulErrorOrNil(op string, redact func(error) error, err error, rules rulePrefixes) error {
	if err == nil {
		return nil
	}
	return consulError(op, redact(err), rules)
}

// String is one line for `bridge doctor`.
func (f Finding) String() string {
	switch {
	case f.OK:
		return "ok      " + f.Op
	case f.Rule != "":
		return fmt.Sprintf("REFUSED %s: add to the token's policy: %s", f.Op, f.Rule)
	default:
		return fmt.Sprintf("FAILED  %s: %s", f.Op, strings.TrimSpace(f.Err.Error()))
	}
}
