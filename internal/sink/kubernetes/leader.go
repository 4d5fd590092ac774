package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// pollEvery bounds how long the leader waits between two reads of the
// observations and the bridges' Leases (the store has no blocking read:
// the sink does not watch).
const pollEvery = time.Second

// leaderIO is the Kubernetes side of the leader's loop for one term: the
// observations in ConfigMaps and the bridges' Leases (fleet.Store), the
// EndpointSlices and fenced writes (fleet.Registry), and the metrics
// (fleet.Reporter).
type leaderIO struct {
	s   *Sink
	log zerolog.Logger
	// lay is the slices as last read or written; stale makes the next
	// Write read them again (after a conflict).
	lay   *layout
	stale bool
	// owner is the Service, once this term made sure it exists.
	owner *kubeapi.OwnerReference
	// refused are the addresses already warned about.
	refused map[string]bool
	// seen tracks each bridge Lease's last change, on this bridge's clock.
	seen  map[string]leaseSeen
	fp    string
	index uint64
	// cms caches the observation ConfigMaps by name, read whole only when
	// their resourceVersion changed.
	cms map[string]kubeapi.ConfigMap
	// dead are the bridges whose Lease went unrenewed long enough that
	// their Lease and ConfigMap are deleted (read collects them).
	dead []deadBridge
	// dns is the DNSEndpoint (nil: k8s_write has no dnsendpoint).
	dns *dnsTarget
}

// deadBridge is a bridge killed without its cleanup: its Lease and
// ConfigMap as last read.
type deadBridge struct {
	lease, leaseRV string
	cm, cmRV       string // "" when it has none
}

type leaseSeen struct {
	rv string
	at time.Time
}

func newLeaderIO(s *Sink, log zerolog.Logger) *leaderIO {
	io := &leaderIO{s: s, log: log, refused: map[string]bool{}, seen: map[string]leaseSeen{}}
	if s.cfg.DNS != nil {
		io.dns = &dnsTarget{s: s, stale: true}
	}
	return io
}

// Observations reads the bridges' Leases and observations; with index set
// to the last index returned it polls until they change or wait passes.
func (io *leaderIO) Observations(ctx context.Context, index uint64, wait time.Duration) (fleet.Observations, error) {
	clk := io.s.clk
	deadline := clk.Now().Add(wait)
	for {
		obs, fp, err := io.read(ctx)
		if err != nil {
			return fleet.Observations{}, err
		}
		io.collect(ctx)
		if fp != io.fp {
			io.fp = fp
			io.index++
		}
		obs.Index = io.index
		left := deadline.Sub(clk.Now())
		if index == 0 || index != io.index || left <= 0 {
			return obs, nil
		}
		if !clock.Sleep(clk, min(pollEvery, left), ctx.Done()) {
			return fleet.Observations{}, ctx.Err()
		}
	}
}

// read is one read of the Leases and ConfigMaps: a bridge is live while its
// Lease has a holder and changed within its duration on this bridge's
// clock; its observation counts when the ConfigMap names that holder. fp
// fingerprints what was read.
func (io *leaderIO) read(ctx context.Context) (fleet.Observations, string, error) {
	s := io.s
	var ls []kubeapi.Lease
	if err := s.o.List(ctx, kubeapi.Leases, kubeapi.Selector(LabelFleet, s.cfg.Service, LabelRole, roleBridge), &ls); err != nil {
		return fleet.Observations{}, "", fmt.Errorf("list bridge leases: %w", err)
	}
	cms, err := io.configMaps(ctx)
	if err != nil {
		return fleet.Observations{}, "", err
	}
	now := s.clk.Now()
	obs := fleet.Observations{ByBridge: map[string]observation.Observation{}, Holders: map[string]string{}}
	seen := make(map[string]leaseSeen, len(ls))
	io.dead = io.dead[:0]
	deadLeases := map[string]kubeapi.Lease{} // by bridge
	for _, l := range ls {
		prev, ok := io.seen[l.Metadata.Name]
		if !ok || prev.rv != l.Metadata.ResourceVersion {
			prev = leaseSeen{rv: l.Metadata.ResourceVersion, at: now}
		}
		seen[l.Metadata.Name] = prev
		dur := time.Duration(l.Spec.LeaseDurationSeconds) * time.Second
		bridge := l.Metadata.Annotations[AnnotBridge]
		if bridge == "" || l.Spec.HolderIdentity == "" || now.Sub(prev.at) >= dur {
			if bridge != "" && now.Sub(prev.at) >= dur+s.cfg.DeregisterAfter {
				deadLeases[bridge] = l
			}
			continue
		}
		obs.Holders[bridge] = l.Spec.HolderIdentity
	}
	for bridge, l := range deadLeases {
		d := deadBridge{lease: l.Metadata.Name, leaseRV: l.Metadata.ResourceVersion}
		for _, cm := range cms {
			if cm.Metadata.Annotations[AnnotBridge] == bridge && cm.Metadata.Annotations[AnnotHolder] == l.Spec.HolderIdentity {
				d.cm, d.cmRV = cm.Metadata.Name, cm.Metadata.ResourceVersion
			}
		}
		io.dead = append(io.dead, d)
	}
	io.seen = seen
	fp := ""
	for _, b := range slices.Sorted(maps.Keys(obs.Holders)) {
		fp += b + "=" + obs.Holders[b] + ";"
	}
	slices.SortFunc(cms, func(a, b kubeapi.ConfigMap) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	for _, cm := range cms {
		bridge, holder := cm.Metadata.Annotations[AnnotBridge], cm.Metadata.Annotations[AnnotHolder]
		if bridge == "" || obs.Holders[bridge] == "" || obs.Holders[bridge] != holder {
			continue
		}
		fp += cm.Metadata.Name + "@" + cm.Metadata.ResourceVersion + ";"
		chunks := make([][]byte, 0, len(cm.BinaryData))
		for i := 0; i < len(cm.BinaryData); i++ {
			chunks = append(chunks, cm.BinaryData[strconv.Itoa(i)])
		}
		o, err := observation.Decode(chunks)
		if err == nil && o.Bridge != bridge {
			err = fmt.Errorf("%w: configmap of bridge %q holds the observation of %q", observation.ErrInvalid, bridge, o.Bridge)
		}
		if err != nil {
			rev, _ := strconv.ParseUint(cm.Metadata.ResourceVersion, 10, 64)
			obs.Bad = append(obs.Bad, fleet.Bad{Bridge: bridge, Key: cm.Metadata.Name, Holder: holder, Revision: rev, Err: err})
			continue
		}
		obs.ByBridge[bridge] = o
	}
	return obs, fp, nil
}

// collect deletes the Lease and ConfigMap of each bridge that died without
// its cleanup (kill -9, a node lost) once its Lease went unrenewed for its
// duration plus k8s_deregister_after: its servers are gone from the slices
// by then. Each delete carries the resourceVersion read, so a bridge that
// came back meanwhile (its Lease renewed) keeps its objects.
func (io *leaderIO) collect(ctx context.Context) {
	s := io.s
	for _, d := range io.dead {
		if d.cm != "" {
			if err := s.o.Remove(ctx, kubeapi.ConfigMaps, d.cm, d.cmRV); err != nil {
				io.log.Debug().Err(err).Str("configmap", d.cm).Msg("cannot delete a dead bridge's observation; retrying later")
				continue
			}
			s.countWrite("configmap")
		}
		if err := s.o.Remove(ctx, kubeapi.Leases, d.lease, d.leaseRV); err != nil {
			io.log.Debug().Err(err).Str("lease", d.lease).Msg("cannot delete a dead bridge's lease; retrying later")
			continue
		}
		s.countWrite("lease")
		delete(io.seen, d.lease)
		io.log.Info().Str("lease", d.lease).Str("configmap", d.cm).Msg("deleted the lease and observation of a bridge that died without deregistering")
	}
	io.dead = io.dead[:0]
}

// configMaps reads the observation ConfigMaps: their metadata every time,
// their data only when their resourceVersion changed since the last read.
func (io *leaderIO) configMaps(ctx context.Context) ([]kubeapi.ConfigMap, error) {
	s := io.s
	metas, err := s.o.ListMeta(ctx, kubeapi.ConfigMaps, kubeapi.Selector(LabelFleet, s.cfg.Service, LabelRole, roleObservation))
	if err != nil {
		return nil, fmt.Errorf("list observation configmaps: %w", err)
	}
	next := make(map[string]kubeapi.ConfigMap, len(metas))
	out := make([]kubeapi.ConfigMap, 0, len(metas))
	for _, m := range metas {
		cm, ok := io.cms[m.Name]
		if !ok || cm.Metadata.ResourceVersion != m.ResourceVersion {
			cm = kubeapi.ConfigMap{}
			if err := s.o.Get(ctx, kubeapi.ConfigMaps, m.Name, &cm); err != nil {
				if kubeapi.IsNotFound(err) {
					continue // deleted since the list
				}
				return nil, fmt.Errorf("read observation configmap %s: %w", m.Name, err)
			}
		}
		next[m.Name] = cm
		out = append(out, cm)
	}
	io.cms = next
	return out, nil
}

// Entries reads the fleet's entries: the slices when they are written,
// else the DNSEndpoint's. A DNSEndpoint that does not say what the
// entries say (edited behind the leader's back, or a write that failed)
// is written again here.
func (io *leaderIO) Entries(ctx context.Context) (map[string]fleet.Entry[spec], error) {
	var entries map[string]fleet.Entry[spec]
	if !io.s.cfg.NoSlices {
		lay, err := io.s.readLayout(ctx)
		if err != nil {
			return nil, err
		}
		// Make sure of the Service again at the next write: it may have
		// been deleted (and its slices with it) or replaced since.
		io.lay, io.stale, io.owner = lay, false, nil
		entries = lay.entries()
	}
	if io.dns == nil {
		return entries, nil
	}
	if err := io.dns.read(ctx); err != nil {
		return nil, err
	}
	if io.s.cfg.NoSlices {
		entries = io.dns.entries()
	}
	if io.dns.held.exists || len(entries) > 0 {
		if _, err := io.dns.sync(ctx, entries); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// Skip drops the registrations Kubernetes would refuse (loopback,
// link-local, not IPv4), with a WARN once per address.
func (io *leaderIO) Skip(p fleet.Plan[spec]) fleet.Plan[spec] {
	p.Register = slices.DeleteFunc(p.Register, func(e fleet.Entry[spec]) bool {
		why, bad := refusal(e.Spec.addr.Addr())
		if bad && !io.refused[e.Key] {
			io.refused[e.Key] = true
			io.log.Warn().Str("server", e.Key).Str("why", why).Msg("not exported to the EndpointSlices: Kubernetes refuses such endpoint addresses")
		}
		return bad
	})
	return p
}

// Write applies p to the slices (when written) and then brings the
// DNSEndpoint (when written) in line with the entries.
func (io *leaderIO) Write(ctx context.Context, p fleet.Plan[spec], current map[string]fleet.Entry[spec]) (int, error) {
	writes := 0
	if !io.s.cfg.NoSlices {
		n, err := io.writeSlices(ctx, p, current)
		if err != nil {
			return n, err
		}
		writes = n
	} else {
		applyPlan(p, current)
	}
	if io.dns == nil {
		return writes, nil
	}
	n, err := io.dns.sync(ctx, current)
	return writes + n, err
}

// writeSlices applies p to the slices after reading the leader Lease
// back, each slice written with its resourceVersion as precondition; a
// conflict makes the next Write read the slices again, and says
// ErrNotLeader when the Lease moved.
func (io *leaderIO) writeSlices(ctx context.Context, p fleet.Plan[spec], current map[string]fleet.Entry[spec]) (int, error) {
	s := io.s
	if io.stale || io.lay == nil {
		lay, err := s.readLayout(ctx)
		if err != nil {
			return 0, err
		}
		io.lay, io.stale = lay, false
	}
	if err := s.leader.check(ctx); err != nil {
		return 0, err
	}
	writes := 0
	if io.owner == nil {
		owner, n, err := s.ensureService(ctx)
		writes += n
		if err != nil {
			return writes, err
		}
		io.owner = owner
	}
	max, lay := s.cfg.MaxPerSlice, io.lay
	for _, e := range p.Remove {
		lay.remove(e.Spec.addr)
		delete(current, e.Key)
	}
	for _, e := range p.Fail {
		lay.set(s.cfg.Service, e.Spec.addr, false, false, e.Since, max)
		e.Spec.ready = false
		current[e.Key] = e
	}
	for _, l := range [][]fleet.Entry[spec]{p.Pass, p.Update, p.Register} {
		for _, e := range l {
			lay.set(s.cfg.Service, e.Spec.addr, true, e.Spec.ready, time.Time{}, max)
			e.Passing, e.Since, e.New = true, time.Time{}, false
			current[e.Key] = e
		}
	}
	for _, sl := range lay.dirty() {
		if len(sl.eps) == 0 && sl.create { // emptied before it was ever written
			delete(lay.byName, sl.name)
			continue
		}
		err := s.writeSlice(ctx, sl, io.owner)
		if err == nil {
			writes++
			if len(sl.eps) == 0 {
				delete(lay.byName, sl.name)
			}
			continue
		}
		io.stale = true
		if kubeapi.IsConflict(err) {
			if cerr := s.leader.check(ctx); errors.Is(cerr, fleet.ErrNotLeader) {
				return writes, fmt.Errorf("%w (write of endpointslice %s refused: %v)", cerr, sl.name, err) //nolint:errorlint // the term's end is the error; the refused write is only its context
			}
		}
		return writes, fmt.Errorf("write endpointslice %s: %w", sl.describe(), err)
	}
	return writes, nil
}

// stages are the errors_total labels of the leader's stages.
var stages = map[fleet.Stage]string{
	fleet.StageObservations: "observations_read", fleet.StageRegistryRead: "slices_read",
	fleet.StageRegistryWrite: "slices_write", fleet.StageUndecodable: "observation",
}

// Failed counts the failure and keeps a refusal for the bridge's rights
// (403) as the leader's standing fault, which Apply returns (a sink error:
// /readyz fails) until a plan is written again.
func (io *leaderIO) Failed(stage fleet.Stage, err error) {
	io.s.metrics.errors.WithLabelValues(stages[stage]).Inc()
	if kubeapi.IsForbidden(err) {
		io.s.member.SetFault(err)
	}
}

// Succeeded clears the standing fault.
func (io *leaderIO) Succeeded() { io.s.member.SetFault(nil) }
func (io *leaderIO) Merged(observers int, _ time.Duration) {
	io.s.metrics.observers.Set(float64(observers))
}
func (io *leaderIO) Describe(ev *zerolog.Event, _ error) *zerolog.Event { return ev }
