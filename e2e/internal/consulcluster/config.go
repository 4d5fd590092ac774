package consulcluster

import (
	"fmt"
	"strconv"
	"strings"
)

// hcl is server s's configuration.
//
// Raft: performance.raft_multiplier = 1 scales raft's base timings by one
// instead of Consul's default five: heartbeat and election timeouts of 1 s,
// leader lease 500 ms. Followers notice a dead leader after 1-2 s (the
// heartbeat timeout is randomised up to twice its value) and elect a new
// one in about as long again. This is what HashiCorp recommends for
// production servers on good hardware; the default 5 is for small VMs.
//
// Autopilot: cleanup_dead_servers = true (the default, spelled out because
// catalog-mode tests rely on it: a failed server is removed from raft and its
// catalog node deregistered, which invalidates the sessions on that node);
// last_contact_threshold = 1s instead of 200ms, so a briefly starved server
// on a loaded test machine is not reported unhealthy; and
// server_stabilization_time = 2s instead of 10s, so a server that rejoins
// after autopilot removed it is promoted to voter 2 s after it became
// healthy. min_quorum stays 0 (unset), as in a default cluster.
//
// retry_interval = 1s (default 30s): all servers start at once and the first
// join attempts race the others' startup. leave_on_terminate = false and
// skip_leave_on_interrupt = true are the server defaults, spelled out.
// acl: only with Options.ACLManagementToken (see aclHCL).
// disable_update_check: no call home (the namespaces have no route out
// anyway). DNS, gRPC, HTTPS, serf WAN, the UI, Connect and peering are off:
// nothing here uses them and they cost start-up time.
func (c *Cluster) hcl(s *Server) string {
	var join []string
	for _, o := range c.Servers {
		if o != s {
			join = append(join, strconv.Quote(o.IP.String()))
		}
	}
	return fmt.Sprintf(`node_name = %q
datacenter = "dc1"
data_dir = %q
server = true
bootstrap_expect = %d
bind_addr = %q
advertise_addr = %q
client_addr = %q
retry_join = [%s]
retry_interval = "1s"
leave_on_terminate = %t
skip_leave_on_interrupt = true
disable_update_check = true
log_level = %q
ports {
  http = %d
  server = %d
  serf_lan = %d
  serf_wan = -1
  dns = -1
  grpc = -1
  grpc_tls = -1
  https = -1
}
ui_config { enabled = false }
connect { enabled = false }
peering { enabled = false }
performance { raft_multiplier = 1 }
autopilot {
  cleanup_dead_servers = true
  last_contact_threshold = "1s"
  server_stabilization_time = "2s"
}
%s
%s
`, s.Name, s.DataDir, len(c.Servers), s.IP, s.IP, s.IP, strings.Join(join, ", "),
		c.opts.LeaveOnTerminate, c.opts.LogLevel, HTTPPort, RPCPort, SerfPort, c.aclHCL(), c.opts.ExtraHCL)
}

// aclHCL is the acl stanza: default deny, the management token as the
// initial management and agent token (so the servers can register their own
// nodes and sync with each other), token persistence off (tokens come only
// from the configuration). Empty without Options.ACLManagementToken.
func (c *Cluster) aclHCL() string {
	if c.opts.ACLManagementToken == "" {
		return ""
	}
	return fmt.Sprintf(`acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = false
  tokens {
    initial_management = %q
    agent = %q
  }
}`, c.opts.ACLManagementToken, c.opts.ACLManagementToken)
}
