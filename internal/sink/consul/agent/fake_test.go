package agent

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// This file holds in-memory stand-ins for the Consul agent and lock, so the
// sink's heartbeat, resync, ownership, leader changes and Close get fast
// unit tests. They do what a real agent does for the calls the sink makes;
// the end-to-end tests check them against a real one.

// fakeOp names a kind of agent call.
type fakeOp string

const (
	opRegister   fakeOp = "register"
	opDeregister fakeOp = "deregister"
	opTTL        fakeOp = "ttl"
	opList       fakeOp = "list"
	opChecks     fakeOp = "checks"
)

// fakeCall is one recorded agent call: the service ID (register,
// deregister), check ID (ttl) or filter (list, checks), and the error
// returned.
type fakeCall struct {
	Op  fakeOp
	ID  string
	Err error
}

// fakeCheck is a check as the agent holds it.
type fakeCheck struct {
	ID         string
	ServiceID  string
	Name       string
	Notes      string
	TTL        string
	Alias      string // AliasService
	DeregAfter string // DeregisterCriticalServiceAfter
	TCP, HTTP  string
	Status     string
	Output     string
}

// fakeService is a registered service with the IDs of its checks.
type fakeService struct {
	Svc    api.AgentService
	Checks []string
}

// fakeFailure makes matching calls fail: n times (n < 0: always) for op,
// and only for id when id is set.
type fakeFailure struct {
	op  fakeOp
	id  string
	n   int
	err error
}

// fakeAgent is an in-memory Consul agent implementing agentAPI. It is safe
// for concurrent use (the sink writes in parallel).
type fakeAgent struct {
	t testing.TB

	mu       sync.Mutex
	services map[string]*fakeService
	checks   map[string]*fakeCheck
	calls    []fakeCall
	failures []*fakeFailure
	// onCall, when set, runs (without the lock held) before each call is
	// served, e.g. to move a test clock.
	onCall func(op fakeOp, id string)
	// persist makes it a non-dev agent for TTL checks: each update's
	// status and output are kept by check ID, and a registration of a
	// check with that ID gets them instead of the status it carries (as
	// the agent's loadCheckState does), until the service is deregistered.
	persist   bool
	persisted map[string][2]string
}

var _ agentAPI = (*fakeAgent)(nil)

func newFakeAgent(t testing.TB) *fakeAgent {
	return &fakeAgent{t: t, services: map[string]*fakeService{}, checks: map[string]*fakeCheck{}, persisted: map[string][2]string{}}
}

// FailNext makes the next n calls of op fail with err (nil: a transport
// error).
func (f *fakeAgent) FailNext(op fakeOp, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, &fakeFailure{op: op, n: n, err: err})
}

// FailOn makes the next call of op on id fail with err (nil: a transport
// error).
func (f *fakeAgent) FailOn(op fakeOp, id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, &fakeFailure{op: op, id: id, n: 1, err: err})
}

// failLocked returns the injected error for this call, if any.
func (f *fakeAgent) failLocked(op fakeOp, id, path string) error {
	for i, fl := range f.failures {
		if fl.op != op || (fl.id != "" && fl.id != id) {
			continue
		}
		if fl.n > 0 {
			fl.n--
			if fl.n == 0 {
				f.failures = slices.Delete(f.failures, i, i+1)
			}
		}
		if fl.err != nil {
			return fl.err
		}
		return consultest.TransportError(path)
	}
	return nil
}

// begin runs the hook, then takes the lock and returns any injected error.
func (f *fakeAgent) begin(op fakeOp, id, path string) error {
	f.mu.Lock()
	hook := f.onCall
	f.mu.Unlock()
	if hook != nil {
		hook(op, id)
	}
	f.mu.Lock()
	return f.failLocked(op, id, path)
}

func (f *fakeAgent) record(op fakeOp, id string, err error) error {
	f.calls = append(f.calls, fakeCall{Op: op, ID: id, Err: err})
	return err
}

func ctxErr(q *api.QueryOptions) error {
	if q == nil || q.Context() == nil {
		return nil
	}
	return q.Context().Err()
}

// ServiceRegisterOpts stores the service, replacing one with the same ID,
// and its checks (the sink always sets ReplaceExistingChecks, so checks the
// registration does not name are dropped, as the agent does).
func (f *fakeAgent) ServiceRegisterOpts(reg *api.AgentServiceRegistration, opts api.ServiceRegisterOpts) error {
	err := f.begin(opRegister, reg.ID, "/v1/agent/service/register")
	defer f.mu.Unlock()
	if err != nil {
		return f.record(opRegister, reg.ID, err)
	}
	if reg.ID == "" || reg.Name == "" {
		return f.record(opRegister, reg.ID, api.StatusError{Code: 400, Body: "Missing service ID or name"})
	}
	checks := slices.Clone(reg.Checks)
	if reg.Check != nil {
		checks = append(api.AgentServiceChecks{reg.Check}, checks...)
	}
	var ids []string
	var newChecks []*fakeCheck
	for i, c := range checks {
		id := c.CheckID
		if id == "" {
			id = "service:" + reg.ID
			if len(checks) > 1 {
				id += ":" + strconv.Itoa(i+1)
			}
		}
		if c.TTL == "" && c.AliasService == "" && c.TCP == "" && c.HTTP == "" {
			return f.record(opRegister, reg.ID, api.StatusError{Code: 400, Body: fmt.Sprintf("Invalid check %q: no type", id)})
		}
		status, output := c.Status, ""
		if status == "" {
			status = api.HealthCritical
		}
		if p, ok := f.persisted[id]; ok && c.TTL != "" {
			status, output = p[0], p[1]
		}
		ids = append(ids, id)
		newChecks = append(newChecks, &fakeCheck{
			ID: id, ServiceID: reg.ID, Name: c.Name, Notes: c.Notes, TTL: c.TTL, Alias: c.AliasService, DeregAfter: c.DeregisterCriticalServiceAfter,
			TCP: c.TCP, HTTP: c.HTTP, Status: status, Output: output,
		})
	}
	if old, ok := f.services[reg.ID]; ok && opts.ReplaceExistingChecks {
		for _, id := range old.Checks {
			delete(f.checks, id)
		}
	}
	for _, c := range newChecks {
		f.checks[c.ID] = c
	}
	tags := slices.Clone(reg.Tags)
	if tags == nil {
		tags = []string{}
	}
	meta := maps.Clone(reg.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	f.services[reg.ID] = &fakeService{
		Svc:    api.AgentService{ID: reg.ID, Service: reg.Name, Address: reg.Address, Port: reg.Port, Tags: tags, Meta: meta},
		Checks: ids,
	}
	return f.record(opRegister, reg.ID, nil)
}

// ServiceDeregisterOpts removes the service and its checks; an unknown ID
// is a 404, as on the agent.
func (f *fakeAgent) ServiceDeregisterOpts(id string, q *api.QueryOptions) error {
	err := f.begin(opDeregister, id, "/v1/agent/service/deregister/"+id)
	defer f.mu.Unlock()
	if err == nil {
		err = ctxErr(q)
	}
	if err != nil {
		return f.record(opDeregister, id, err)
	}
	if !f.deleteLocked(id) {
		return f.record(opDeregister, id, api.StatusError{Code: 404, Body: fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)})
	}
	return f.record(opDeregister, id, nil)
}

func (f *fakeAgent) deleteLocked(id string) bool {
	s, ok := f.services[id]
	if !ok {
		return false
	}
	for _, c := range s.Checks {
		delete(f.checks, c)
		delete(f.persisted, c)
	}
	delete(f.services, id)
	return true
}

// UpdateTTLOpts sets a TTL check's status and output; an unknown check is a
// 404 `Unknown check ID "..."`, a check without TTL a 500, as on the agent.
func (f *fakeAgent) UpdateTTLOpts(checkID, output, status string, q *api.QueryOptions) error {
	err := f.begin(opTTL, checkID, "/v1/agent/check/update/"+checkID)
	defer f.mu.Unlock()
	if err == nil {
		err = ctxErr(q)
	}
	if err != nil {
		return f.record(opTTL, checkID, err)
	}
	c, ok := f.checks[checkID]
	switch {
	case !ok:
		err = api.StatusError{Code: 404, Body: fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", checkID)}
	case c.TTL == "":
		err = api.StatusError{Code: 500, Body: fmt.Sprintf("CheckID %q does not have associated TTL", checkID)}
	case status != api.HealthPassing && status != api.HealthWarning && status != api.HealthCritical:
		err = api.StatusError{Code: 400, Body: "Invalid status " + status}
	default:
		c.Status, c.Output = status, output
		if f.persist {
			f.persisted[checkID] = [2]string{status, output}
		}
	}
	return f.record(opTTL, checkID, err)
}

// ServicesWithFilterOpts returns the services matching filter, which must
// have exactly the shape of ownedFilter; any other filter fails the test.
func (f *fakeAgent) ServicesWithFilterOpts(filter string, q *api.QueryOptions) (map[string]*api.AgentService, error) {
	err := f.begin(opList, filter, "/v1/agent/services")
	defer f.mu.Unlock()
	if err == nil {
		err = ctxErr(q)
	}
	if err != nil {
		return nil, f.record(opList, filter, err)
	}
	managedBy, bridgeID, perr := parseOwnedFilter(filter)
	if perr != nil {
		f.t.Errorf("fake agent: unexpected filter %s: %v", filter, perr)
		return nil, f.record(opList, filter, api.StatusError{Code: 400, Body: "Failed to create boolean expression evaluator: " + perr.Error()})
	}
	out := map[string]*api.AgentService{}
	for id, s := range f.services {
		if s.Svc.Meta[consulclient.MetaManagedBy] == managedBy && s.Svc.Meta[consulclient.MetaBridgeID] == bridgeID {
			out[id] = consultest.CloneService(&s.Svc)
		}
	}
	return out, f.record(opList, filter, nil)
}

// ChecksWithFilterOpts returns the checks matching filter, which must have
// exactly the shape of appChecksFilter; any other filter fails the test.
func (f *fakeAgent) ChecksWithFilterOpts(filter string, q *api.QueryOptions) (map[string]*api.AgentCheck, error) {
	err := f.begin(opChecks, filter, "/v1/agent/checks")
	defer f.mu.Unlock()
	if err == nil {
		err = ctxErr(q)
	}
	if err != nil {
		return nil, f.record(opChecks, filter, err)
	}
	name, service, perr := parseChecksFilter(filter)
	if perr != nil {
		f.t.Errorf("fake agent: unexpected filter %s: %v", filter, perr)
		return nil, f.record(opChecks, filter, api.StatusError{Code: 400, Body: "Failed to create boolean expression evaluator: " + perr.Error()})
	}
	out := map[string]*api.AgentCheck{}
	for id, c := range f.checks {
		s, ok := f.services[c.ServiceID]
		if !ok || c.Name != name || s.Svc.Service != service {
			continue
		}
		out[id] = &api.AgentCheck{CheckID: id, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
			ServiceID: c.ServiceID, ServiceName: s.Svc.Service, Type: map[bool]string{true: "ttl", false: "alias"}[c.TTL != ""]}
	}
	return out, f.record(opChecks, filter, nil)
}

// parseChecksFilter parses `Name == "..." and ServiceName == L`.
func parseChecksFilter(filter string) (name, service string, err error) {
	rest, ok := strings.CutPrefix(filter, `Name == `)
	if !ok {
		return "", "", errors.New(`want Name == ... first`)
	}
	name, rest, err = consultest.CutFilterLiteral(rest)
	if err != nil {
		return "", "", err
	}
	rest, ok = strings.CutPrefix(rest, ` and ServiceName == `)
	if !ok {
		return "", "", errors.New(`want and ServiceName == ... second`)
	}
	service, rest, err = consultest.CutFilterLiteral(rest)
	if err != nil {
		return "", "", err
	}
	if rest != "" {
		return "", "", fmt.Errorf("trailing %q", rest)
	}
	return name, service, nil
}

// SetCheck changes a check's status and output behind the sink's back.
func (f *fakeAgent) SetCheck(id, status, output string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.checks[id]; ok {
		c.Status, c.Output = status, output
	}
}

// parseOwnedFilter parses `Meta["managed-by"] == L1 and Meta["bridge-id"] ==
// L2`, each L a go-bexpr string literal: "..." or `...`, ending at the first
// closing delimiter (no escapes), then strconv.Unquote'd.
func parseOwnedFilter(filter string) (managedBy, bridgeID string, err error) {
	rest, ok := strings.CutPrefix(filter, `Meta["managed-by"] == `)
	if !ok {
		return "", "", errors.New(`want Meta["managed-by"] == ... first`)
	}
	managedBy, rest, err = consultest.CutFilterLiteral(rest)
	if err != nil {
		return "", "", err
	}
	rest, ok = strings.CutPrefix(rest, ` and Meta["bridge-id"] == `)
	if !ok {
		return "", "", errors.New(`want and Meta["bridge-id"] == ... second`)
	}
	bridgeID, rest, err = consultest.CutFilterLiteral(rest)
	if err != nil {
		return "", "", err
	}
	if rest != "" {
		return "", "", fmt.Errorf("trailing %q", rest)
	}
	return managedBy, bridgeID, nil
}

// Restart forgets every service and check, like a dev agent restarting.
func (f *fakeAgent) Restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services = map[string]*fakeService{}
	f.checks = map[string]*fakeCheck{}
	f.persisted = map[string][2]string{}
}

// Put registers a service directly (someone else's, or one to find on
// resync), without recording a call.
func (f *fakeAgent) Put(s api.AgentService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Tags == nil {
		s.Tags = []string{}
	}
	if s.Meta == nil {
		s.Meta = map[string]string{}
	}
	f.services[s.ID] = &fakeService{Svc: *consultest.CloneService(&s)}
}

// Delete removes a service behind the sink's back; it reports whether it
// existed.
func (f *fakeAgent) Delete(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deleteLocked(id)
}

// Service returns a copy of the service with id.
func (f *fakeAgent) Service(id string) (api.AgentService, []fakeCheck, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[id]
	if !ok {
		return api.AgentService{}, nil, false
	}
	var checks []fakeCheck
	for _, c := range s.Checks {
		checks = append(checks, *f.checks[c])
	}
	return *consultest.CloneService(&s.Svc), checks, true
}

// Check returns a copy of the check with id.
func (f *fakeAgent) Check(id string) (fakeCheck, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.checks[id]
	if !ok {
		return fakeCheck{}, false
	}
	return *c, true
}

// IDs returns the IDs of all services held, sorted.
func (f *fakeAgent) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.services))
}

// Calls returns the calls recorded so far.
func (f *fakeAgent) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Count returns how many calls of op were made (failed ones included).
func (f *fakeAgent) Count(op fakeOp) int {
	n := 0
	for _, c := range f.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

// CallIDs returns the IDs of the calls of op, in call order.
func (f *fakeAgent) CallIDs(op fakeOp) []string {
	var ids []string
	for _, c := range f.Calls() {
		if c.Op == op {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Reset forgets the recorded calls (not the services).
func (f *fakeAgent) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}
