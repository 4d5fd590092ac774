// Package consul is the face of the bridge's Consul sink: its settings
// (Config, loaded by Section from the consul_* keys), the factory the sink
// registry builds it with, `bridge doctor`'s entry point, and the choice of
// the mode. The sink registers every discovered server as an instance of
// one Consul service and removes only what its bridge owns. Agent mode
// (package agent) registers with the local agent; catalog mode (package
// catalog), for clusters without client agents, has each bridge publish
// what it observes under a session and one elected bridge write the
// catalog. Package consulclient holds what both share: the client, the
// lock, ACL and rate-limit errors. docs/sinks/consul-agent.md and
// docs/sinks/consul-catalog.md explain both modes.
package consul
