package agent

import "github.com/hashicorp/consul/api"

// agentAPI is the part of consul/api's *api.Agent the agent-mode sink uses.
// Tests give the sink an in-memory agent instead.
type agentAPI interface {
	ServiceRegisterOpts(service *api.AgentServiceRegistration, opts api.ServiceRegisterOpts) error
	ServiceDeregisterOpts(serviceID string, q *api.QueryOptions) error
	UpdateTTLOpts(checkID, output, status string, q *api.QueryOptions) error
	ServicesWithFilterOpts(filter string, q *api.QueryOptions) (map[string]*api.AgentService, error)
	ChecksWithFilterOpts(filter string, q *api.QueryOptions) (map[string]*api.AgentCheck, error)
}

var _ agentAPI = (*api.Agent)(nil)
