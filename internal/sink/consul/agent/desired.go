package agent

import (
	"slices"
	"unicode/utf8"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file is the pure part of the sink: what Consul should hold for a
// snapshot and what to write to get there. No I/O, no clock.

// desiredEntry is one server to register.
type desiredEntry struct {
	ep  endpoint.Endpoint
	svc consulclient.Service
	app appState // the zero value without app checks
}

// appState is a server's app check as the agent holds it, or should.
type appState struct {
	Status string // api.HealthPassing or api.HealthCritical
	Output string
}

// pendingOutput is the app check's output for a pending server whose
// Check carries none.
const pendingOutput = "pending: app check not yet passed rise times"

// maxAppOutput bounds the output written to the agent, well below the
// agent's own cap (4 KiB, beyond which it rewrites the output and the
// comparison with what was written would never settle).
const maxAppOutput = 1024

// appStateOf is the app check of an endpoint whose Check is c: passing
// when ready, critical when pending or failing, with the check's output.
func appStateOf(c endpoint.Check) appState {
	st := appState{Status: api.HealthCritical, Output: c.Output}
	if c.State.IsReady() {
		st.Status = api.HealthPassing
	}
	if st.Output == "" && c.State == endpoint.Pending {
		st.Output = pendingOutput
	}
	if len(st.Output) > maxAppOutput {
		cut := maxAppOutput
		for cut > 0 && !utf8.RuneStart(st.Output[cut]) {
			cut--
		}
		st.Output = st.Output[:cut]
	}
	return st
}

// holds reports whether the agent's check, held, already says what want
// says. A check registered (or found) without output holds a pending
// verdict whose output is pendingOutput: the registration cannot carry an
// output (the agent has no field for it) and the check's notes say what a
// critical check without output means, so it takes no second write.
func (held appState) holds(want appState) bool {
	if held.Status != want.Status {
		return false
	}
	return held.Output == want.Output || (held.Output == "" && want.Output == pendingOutput)
}

// shape is what every server a bridge registers shares: the service name,
// the tags, the owner, the fingerprint of the check configuration, and
// whether each server carries the bridge's app check.
type shape struct {
	service  string
	tags     []string
	bridgeID string
	checks   string
	appCheck bool
}

func shapeOf(cfg Config) shape {
	return shape{service: cfg.Service, tags: cfg.Tags, bridgeID: cfg.BridgeID, checks: agentChecksFingerprint(cfg), appCheck: cfg.AppCheck}
}

// desired maps the snapshot to service IDs and services.
func (sh shape) desired(s endpoint.Snapshot) map[string]desiredEntry {
	out := make(map[string]desiredEntry, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			continue
		}
		meta := map[string]string{
			consulclient.MetaManagedBy: consulclient.ManagedByValue,
			consulclient.MetaBridgeID:  sh.bridgeID,
			consulclient.MetaChecks:    sh.checks,
		}
		if e.Interface != "" {
			meta[consulclient.MetaInterface] = e.Interface
		}
		if e.Source.IsValid() {
			meta[consulclient.MetaSourceAddress] = e.Source.String()
		}
		d := desiredEntry{ep: e, svc: consulclient.Service{
			Name:    sh.service,
			Address: e.Addr.Addr().String(),
			Port:    int(e.Addr.Port()),
			Tags:    slices.Clone(sh.tags),
			Meta:    meta,
		}}
		if sh.appCheck {
			d.app = appStateOf(e.Check)
		}
		out[consulclient.ServiceID(sh.service, e.Addr)] = d
	}
	return out
}

// appUpdates returns the IDs, sorted, of desired servers the agent holds
// (known) whose app check it does not hold as wanted (apps; an ID missing
// there is a check in an unknown state): the check updates of a round.
// The IDs of toReg (sorted), which are registered with their status, are
// left out.
func appUpdates(desired map[string]desiredEntry, known map[string]consulclient.Service, apps map[string]appState, toReg []string) []string {
	var out []string
	for id, d := range desired {
		if _, ok := known[id]; !ok {
			continue
		}
		if _, reg := slices.BinarySearch(toReg, id); reg {
			continue
		}
		if held, ok := apps[id]; ok && held.holds(d.app) {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// reconcile returns the IDs to (re-)register and to deregister, each sorted,
// and how many desired entries the registry already holds as wanted.
func reconcile(desired map[string]desiredEntry, known map[string]consulclient.Service) (toReg, toDereg []string, unchanged int) {
	for id, d := range desired {
		if k, ok := known[id]; ok && k.Equal(d.svc) {
			unchanged++
			continue
		}
		toReg = append(toReg, id)
	}
	for id := range known {
		if _, ok := desired[id]; !ok {
			toDereg = append(toDereg, id)
		}
	}
	slices.Sort(toReg)
	slices.Sort(toDereg)
	return toReg, toDereg, unchanged
}

// diff describes a reconcile as endpoints, sorted.
func diff(desired map[string]desiredEntry, known map[string]consulclient.Service, toReg, toDereg []string, unchanged int) endpoint.Diff {
	d := endpoint.Diff{Unchanged: unchanged}
	for _, id := range toReg {
		d.Added = append(d.Added, desired[id].ep)
	}
	for _, id := range toDereg {
		d.Removed = append(d.Removed, known[id].Endpoint())
	}
	slices.SortFunc(d.Added, endpoint.Compare)
	slices.SortFunc(d.Removed, endpoint.Compare)
	return d
}

// agentChecksFingerprint summarises agent mode's per-server checks: the
// alias check with its DeregisterCriticalServiceAfter, and "+app" with the
// bridge's app check. It is stored in meta so a restart with other check
// settings re-registers (a server registered by an older bridge with a
// Consul-run tcp or http check is re-registered without it).
func agentChecksFingerprint(cfg Config) string {
	s := "alias/" + cfg.DeregisterAfter.String()
	if cfg.AppCheck {
		s += "+app"
	}
	return s
}
