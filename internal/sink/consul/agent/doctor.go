package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// doctorServer is the server Doctor pretends to register (never written:
// its transactions roll back).
var doctorServer = netip.MustParseAddrPort("192.0.2.1:8000") // TEST-NET-1

// Doctor tries, with cfg's client and token, each Consul operation agent
// mode needs, and changes nothing it does not own: the bridge's own
// service and the servers' service are sent as catalog transactions that
// roll back (Consul vets them with the same service:write the agent
// endpoint asks for), and with consul_lock it writes the lock key the same
// way and creates and destroys a session (the bridge's own).
func Doctor(ctx context.Context, cfg Config) ([]consulclient.Finding, error) {
	cfg = cfg.WithDefaults()
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("consul sink config: %w", err)
	}
	// Agent mode has no fleet prefix: the sentinel key is under the
	// default one of its service.
	d := consulclient.NewCheckup(client, consulclient.ExactRule, consulclient.DefaultKVPrefix(cfg.Service))
	node := "udp-discovery-bridge-doctor" // never written: the txn rolls back
	svc := func(name, id string) *api.TxnOp {
		return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{ID: id, Service: name}}}
	}
	name := consulclient.BridgeServiceName
	d.Add("register the bridge's own service ("+name+")", d.DryTxn(ctx, "register service "+name, svc(name, name+"-"+cfg.BridgeID)))
	id := consulclient.ServiceID(cfg.Service, doctorServer)
	d.Add("register servers (service "+cfg.Service+")", d.DryTxn(ctx, "register service "+cfg.Service, svc(cfg.Service, id)))
	if cfg.Agent.LockKey == "" {
		return d.Findings, nil
	}
	d.Add("write the lock key "+cfg.Agent.LockKey, d.DryTxn(ctx, "write key "+cfg.Agent.LockKey,
		&api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: cfg.Agent.LockKey, Value: []byte(cfg.BridgeID)}}))
	w := (&api.WriteOptions{}).WithContext(ctx)
	sid, _, err := d.API.Session().CreateNoChecks(&api.SessionEntry{Name: "udp-discovery-bridge " + cfg.BridgeID + " doctor", TTL: "10s"}, w)
	d.Add("create a session on the agent's node", d.Err("create session", err))
	if sid != "" {
		_, _ = d.API.Session().Destroy(sid, w)
	}
	return d.Findings, nil
}
