// Package catalog is the Consul sink in catalog mode, for clusters without
// client agents: every bridge publishes what it observes under a session
// of its own (KV observations, the publisher), the bridges elect a leader
// with a lock on the fleet's leader key held by that session (the
// campaign), and the leader merges the observations and writes the catalog
// (package fleet's leader loop on this package's store and registry) in
// /v1/txn batches, paced under Consul's rate limit, never overwriting a
// node of someone else. docs/sinks/consul-catalog.md explains it; package
// consulclient holds the client and the lock it shares with agent mode.
package catalog
