// Package consul is the bridge's Consul sink: it registers every discovered
// server as an instance of one Consul service and removes only what its
// bridge owns. Agent mode registers with the local agent (a TTL heartbeat
// on the bridge's own service and an alias check per server, and with app
// checks a TTL check per server that carries the bridge's verdict, written
// on transitions only); catalog mode,
// for clusters without client agents, has each bridge publish what it
// observes under a session and one elected bridge write the catalog in
// /v1/txn batches. docs/sinks/consul-agent.md and docs/sinks/consul-catalog.md explain both.
package consul
