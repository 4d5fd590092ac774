// Package agent is the Consul sink in agent mode: the bridge registers
// every discovered server with its local Consul agent, under a TTL
// heartbeat of its own service and an alias check per server, and with
// app checks a TTL check per server that carries the bridge's verdict,
// written on transitions only. With consul_lock only the holder of a KV
// lock registers. docs/sinks/consul-agent.md explains it; package
// consulclient holds the client and the lock it shares with catalog mode.
package agent
