package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file holds the agent API calls of the agent-mode sink: each one
// write or read, its error naming the operation and the ID, every write
// counted (Counters, and sink.Wrote for the runner's metrics).

// refresh refreshes the bridge's TTL check, registering the bridge service
// when this process has not yet done so or the agent lost it (agent
// restarted); in the latter case it also forces a resync.
func (c *Agent) refresh(ctx context.Context, s endpoint.Snapshot, res *sink.Result) error {
	if c.beat.registered {
		err := c.updateTTL(ctx, fmt.Sprintf("round %d: %d servers", s.Round, len(s.Endpoints)))
		if err == nil {
			res.Writes++
			return nil
		}
		if !checkMissing(err) {
			return consulclient.OpError("update ttl of check "+c.ids.check, c.redact(err), consulclient.ExactRule)
		}
		c.log.Warn().Str("check_id", c.ids.check).Msg("agent lost the bridge heartbeat check; re-registering the bridge and resyncing")
		c.beat.registered = false
		c.needResync = true
	}
	if err := c.registerBridge(ctx, s); err != nil {
		return err
	}
	res.Writes++
	return nil
}

// updateTTL marks the heartbeat check passing with note.
func (c *Agent) updateTTL(ctx context.Context, note string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.agent.UpdateTTLOpts(c.ids.check, note, api.HealthPassing, q); err != nil {
		return err
	}
	c.counters.ttlUpdates.Add(1)
	sink.Wrote(ctx, 1)
	c.beat.last = c.cfg.Clock.Now()
	return nil
}

// checkMissing reports whether an UpdateTTL error means the agent does not
// know the check (it restarted, or someone deregistered the bridge).
func checkMissing(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "does not have associated TTL") ||
		strings.Contains(msg, "Unknown check") ||
		(strings.Contains(msg, "CheckID") && strings.Contains(msg, "does not exist"))
}

// registerBridge registers the bridge's own service with its TTL check,
// already passing so alias checks pass at once.
func (c *Agent) registerBridge(ctx context.Context, s endpoint.Snapshot) error {
	reg := &api.AgentServiceRegistration{
		ID:   c.ids.bridgeSvc,
		Name: consulclient.BridgeServiceName,
		Meta: map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, consulclient.MetaBridgeID: c.cfg.BridgeID},
		Check: &api.AgentServiceCheck{
			CheckID: c.ids.check,
			Name:    "udp-discovery-bridge heartbeat",
			TTL:     c.cfg.Agent.TTL.String(),
			Status:  api.HealthPassing,
			Notes:   "refreshed by the bridge after every discovery round",
		},
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := c.agent.ServiceRegisterOpts(reg, opts); err != nil {
		return consulclient.OpError("register bridge service "+c.ids.bridgeSvc, c.redact(err), consulclient.ExactRule)
	}
	c.counters.registers.Add(1)
	sink.Wrote(ctx, 1)
	c.beat = heartbeat{registered: true, last: c.cfg.Clock.Now()}
	c.log.Info().Str("service_id", c.ids.bridgeSvc).Uint64("round", s.Round).Msg("bridge service registered")
	return nil
}

// AppCheckName is the name of the bridge's app check on every server
// (agent mode, with app checks).
const AppCheckName = "app check by udp-discovery-bridge"

// AppCheckTTL is the TTL of the app check: ten years. The bridge writes
// the check on transitions only, so its TTL must never run out between
// two of them; Consul sets no upper bound (it requires a TTL > 0, arms a
// Go timer of that length, and keeps the persisted state of a non-dev
// agent until now + TTL), and every update, registration and agent restart
// starts the TTL anew. Whether the bridge itself lives is what the alias
// check on its heartbeat says.
const AppCheckTTL = 10 * 365 * 24 * time.Hour

// appCheckNotes are the app check's notes: what its status means.
const appCheckNotes = "the app check udp-discovery-bridge runs against this server (app_check): passing when ready; " +
	"critical while pending (not yet passed app_check_rise times in a row) or failing (failed app_check_fall times in a row); " +
	"written on each transition, with the output of the check that made it"

// errAppCheckMissing marks an app check update the agent refused because
// it does not hold the check (the service was removed behind the bridge's
// back).
var errAppCheckMissing = errors.New("the agent does not hold the app check")

// register registers one server with its alias check and, with app
// checks, its app check at the status of the moment, replacing any checks
// it had.
func (c *Agent) register(ctx context.Context, id string, d desiredEntry) error {
	checks := api.AgentServiceChecks{{
		CheckID:                        id + ":alias",
		Name:                           "udp-discovery-bridge heartbeat (alias)",
		AliasService:                   c.ids.bridgeSvc,
		DeregisterCriticalServiceAfter: c.cfg.DeregisterAfter.String(),
	}}
	if c.shape.appCheck {
		// No DeregisterCriticalServiceAfter: a failing server is kept.
		checks = append(checks, &api.AgentServiceCheck{
			CheckID: appCheckID(id), Name: AppCheckName, TTL: AppCheckTTL.String(),
			Status: d.app.Status, Notes: appCheckNotes,
		})
	}
	hostPort := net.JoinHostPort(d.svc.Address, strconv.Itoa(d.svc.Port))
	reg := &api.AgentServiceRegistration{
		ID:      id,
		Name:    d.svc.Name,
		Address: d.svc.Address,
		Port:    d.svc.Port,
		Tags:    d.svc.Tags,
		Meta:    d.svc.Meta,
		Checks:  checks,
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := c.agent.ServiceRegisterOpts(reg, opts); err != nil {
		return consulclient.OpError(fmt.Sprintf("register %s (%s)", id, hostPort), c.redact(err), consulclient.ExactRule)
	}
	c.counters.registers.Add(1)
	sink.Wrote(ctx, 1)
	return nil
}

// updateApp sets the app check of the server with service ID id to st: one
// write (PUT /v1/agent/check/update/<check id>), which also starts its TTL
// anew. A check the agent does not hold is errAppCheckMissing.
func (c *Agent) updateApp(ctx context.Context, id string, st appState) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.agent.UpdateTTLOpts(appCheckID(id), st.Output, st.Status, q); err != nil {
		missing := checkMissing(err)
		err = consulclient.OpError("update app check "+appCheckID(id)+" to "+st.Status, c.redact(err), consulclient.ExactRule)
		if missing {
			return fmt.Errorf("%w: %w", errAppCheckMissing, err)
		}
		return err
	}
	c.counters.appUpdates.Add(1)
	sink.Wrote(ctx, 1)
	return nil
}

// deregister removes one service by ID.
func (c *Agent) deregister(ctx context.Context, id string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := c.agent.ServiceDeregisterOpts(id, q); err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == 404 {
			// Already gone: the goal is reached. The request was still made
			// and Apply counts it in Result.Writes, so count and report it
			// like any other write.
			c.counters.deregisters.Add(1)
			sink.Wrote(ctx, 1)
			return nil
		}
		return consulclient.OpError("deregister "+id, c.redact(err), consulclient.ExactRule)
	}
	c.counters.deregisters.Add(1)
	sink.Wrote(ctx, 1)
	return nil
}

// readOwned reads the servers this bridge owns and, with app checks, what
// the agent holds of their app checks.
func (c *Agent) readOwned(ctx context.Context) (map[string]consulclient.Service, map[string]appState, error) {
	owned, err := c.listOwned(ctx)
	if err != nil {
		return nil, nil, err
	}
	apps := map[string]appState{}
	if !c.shape.appCheck {
		return owned, apps, nil
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	checks, err := c.agent.ChecksWithFilterOpts(c.appsFilter, q)
	if err != nil {
		return nil, nil, consulclient.OpError(fmt.Sprintf("list app checks of service %q", c.cfg.Service), c.redact(err), consulclient.ExactRule)
	}
	c.counters.lists.Add(1)
	for _, ch := range checks {
		if _, ok := owned[ch.ServiceID]; ok && ch.CheckID == appCheckID(ch.ServiceID) {
			apps[ch.ServiceID] = appState{Status: ch.Status, Output: ch.Output}
		}
	}
	return owned, apps, nil
}

// listOwned reads the servers this bridge owns from the agent, filtered on
// the agent by meta (the bridge's own service is left out).
func (c *Agent) listOwned(ctx context.Context) (map[string]consulclient.Service, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	svcs, err := c.agent.ServicesWithFilterOpts(c.ids.filter, q)
	if err != nil {
		return nil, consulclient.OpError(fmt.Sprintf("list services owned by bridge %q", c.cfg.BridgeID), c.redact(err), consulclient.ExactRule)
	}
	c.counters.lists.Add(1)
	out := make(map[string]consulclient.Service, len(svcs))
	for id, s := range svcs {
		if id == c.ids.bridgeSvc || s.Service == consulclient.BridgeServiceName {
			continue
		}
		out[id] = consulclient.Service{Name: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta}
	}
	return out, nil
}
