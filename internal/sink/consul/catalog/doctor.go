package catalog

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// doctorServer is the server Doctor pretends to register (never written:
// its transactions roll back).
var doctorServer = netip.MustParseAddrPort("192.0.2.1:8000") // TEST-NET-1

// Doctor tries, with cfg's client and token, each Consul operation catalog
// mode needs, and changes nothing it does not own: catalog writes are sent
// in transactions that roll back (consulclient.Checkup). It may create and
// destroy a session on the fleet's node (registering that node when it is
// missing) and write and delete a key <consul_kv_prefix>/doctor/<bridge_id>:
// those are the bridge's own.
func Doctor(ctx context.Context, cfg Config) ([]consulclient.Finding, error) {
	cfg = cfg.WithDefaults()
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	c := &Catalog{cfg: cfg}
	d := consulclient.NewCheckup(client, c.catalogRules, cfg.Catalog.KVPrefix)
	sh := c.shape()
	e := sh.entryFor(doctorServer, fleet.Observed{Bridges: 1})
	d.Add("read this fleet's catalog entries (service "+cfg.Service+")", readService(ctx, d, cfg.Service))
	if e.Spec.shared() {
		d.Add("write the fleet's shared node ("+e.Spec.node+")", d.DryTxn(ctx, "write node "+e.Spec.node,
			&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: e.Spec.node, Address: sharedNodeAddr, Meta: sh.sharedNodeMeta()}}}))
	} else {
		d.Add("write a server's node ("+e.Spec.node+")", d.DryTxn(ctx, "write node "+e.Spec.node,
			&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: e.Spec.node, Address: e.Spec.nodeAddr, Meta: e.Spec.nodeMeta}}}))
	}
	d.Add("write a server's service ("+cfg.Service+")", d.DryTxn(ctx, "write service "+e.Spec.svcID, c.serviceOp(e)))
	d.Add("write a server's observed check", d.DryTxn(ctx, "write check "+e.Spec.checkID(ObservedCheckID)+" of "+e.Spec.svcID, c.observedCheck(e, true, time.Time{})))
	app := sh.entryFor(doctorServer, fleet.Observed{Bridges: 1, Health: endpoint.Failing, Output: "bridge doctor"})
	d.Add("write and delete a server's app check", d.DryTxn(ctx, "write and delete check "+e.Spec.checkID(AppCheckID)+" of "+e.Spec.svcID,
		c.appCheckOp(app), c.deleteCheckOp(app, AppCheckID)))
	remove := writeItem{e: &e, kind: writeRemove, parts: partRemove}
	if e.Spec.shared() {
		d.Add("remove a server's service", d.DryTxn(ctx, "delete service "+e.Spec.svcID, c.ops(remove)...))
	} else {
		d.Add("remove a server's node", d.DryTxn(ctx, "delete node "+e.Spec.node, c.ops(remove)...))
	}
	doctorSession(ctx, d, cfg)
	return d.Findings, nil
}

// readService reads the service's instances. Consul leaves out what a
// token may not read instead of refusing (other owners' instances may be
// left out rightly), so only an unknown token or a transport error shows
// here; the write checks find a missing node or service rule.
func readService(ctx context.Context, d *consulclient.Checkup, service string) error {
	_, _, err := d.API.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(ctx))
	return d.Err("read service "+service, err)
}

// doctorSession checks the fleet's node, a session on it and the fleet's
// keys: it registers the node when it is missing, and writes and deletes
// <consul_kv_prefix>/doctor/<bridge_id> under a session it destroys.
func doctorSession(ctx context.Context, d *consulclient.Checkup, cfg Config) {
	prefix := cfg.Catalog.KVPrefix
	node := bridgesNode(prefix)
	w := (&api.WriteOptions{}).WithContext(ctx)
	nodeMeta := map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: prefix}
	nodeErr := d.DryTxn(ctx, "register node "+node, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: "127.0.0.1",
		Meta: nodeMeta}}})
	d.Add("register the fleet's node ("+node+")", nodeErr)
	n, _, err := d.API.Catalog().Node(node, (&api.QueryOptions{}).WithContext(ctx))
	exists := err == nil && n != nil
	if !exists && nodeErr == nil {
		_, err := d.API.Catalog().Register(&api.CatalogRegistration{Node: node, Address: "127.0.0.1", NodeMeta: nodeMeta}, w)
		exists = err == nil
	}
	var sid string
	if exists {
		sid, _, err = d.API.Session().CreateNoChecks(&api.SessionEntry{Name: sessionName(cfg.BridgeID) + " doctor", Node: node,
			TTL: "10s", Behavior: api.SessionBehaviorDelete}, w)
		d.Add("create a session on the fleet's node", d.Err("create session on node "+node, err))
	} else {
		d.Add("create a session on the fleet's node", fmt.Errorf("not tried: the fleet's node %s is not registered and cannot be", node))
	}
	key := path.Join(prefix, "doctor", cfg.BridgeID)
	p := &api.KVPair{Key: key, Value: []byte("bridge doctor"), Session: sid}
	var kvErr error
	if sid != "" {
		_, _, kvErr = d.API.KV().Acquire(p, w)
	} else {
		_, kvErr = d.API.KV().Put(p, w)
	}
	if kvErr == nil {
		_, kvErr = d.API.KV().Delete(key, w)
	}
	d.Add("write and delete keys under "+prefix+"/", d.Err("write key "+key, kvErr))
	_, _, err = d.API.KV().List(prefix+"/obs/", (&api.QueryOptions{}).WithContext(ctx))
	d.Add("read the observations under "+prefix+"/obs/", d.Err("list "+prefix+"/obs/", err))
	if sid != "" {
		_, _ = d.API.Session().Destroy(sid, w)
	}
}
