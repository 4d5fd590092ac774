package kubernetes

// The DNSEndpoint the leader writes (k8s_write dnsendpoint): the fleet's
// ready servers as the records of one externaldns.k8s.io/v1alpha1
// DNSEndpoint, for external-dns (about 30 DNS providers), k8s_gateway and
// k8gb to publish. It mirrors the fleet's entries after every write of
// the leader: with the EndpointSlices on it is derived from them; without
// them it is the registry itself, its servers' states kept in an
// annotation (the records hold ready servers only).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// AnnotServers is the DNSEndpoint's annotation of the fleet's servers and
// their states, when it is the only registry (no EndpointSlices):
// "ip:port=r" ready, "=n" observed and not ready, "=u<unix seconds>"
// unobserved since then, comma-separated, sorted.
const AnnotServers = "udp-discovery-bridge.io/servers"

// maxServersAnnotation bounds the state annotation (Kubernetes takes 256
// KiB of annotations in all): about 9,000 servers.
const maxServersAnnotation = 200 << 10

// DNSConfig is the DNSEndpoint the leader writes.
type DNSConfig struct {
	// Object is the DNSEndpoint's name.
	Object string
	// Name is the record every ready server is an A record of (a DNS
	// name without the trailing dot).
	Name string
	// TTL is the records' TTL (whole seconds; 0: the provider's default).
	TTL time.Duration
	// SRV adds an A record per ready server, <a-b-c-d>.<Name>, and the SRV
	// record _<port name>._tcp.<Name> naming them with their ports.
	SRV bool
}

// dnsHeld is the DNSEndpoint as last read or written.
type dnsHeld struct {
	exists bool
	rv     string
	spec   kubeapi.DNSEndpointSpec
	state  string // AnnotServers
}

// dnsTarget is the leader's DNSEndpoint for one term.
type dnsTarget struct {
	s     *Sink
	held  dnsHeld
	stale bool // read it again before the next write
}

// read reads the DNSEndpoint (absent: nothing held); one that exists
// without the fleet's label is refused.
func (d *dnsTarget) read(ctx context.Context) error {
	s := d.s
	var obj kubeapi.DNSEndpoint
	err := s.o.Get(ctx, kubeapi.DNSEndpoints, s.cfg.DNS.Object, &obj)
	switch {
	case kubeapi.IsNotFound(err):
		d.held, d.stale = dnsHeld{}, false
		return nil
	case err != nil:
		return fmt.Errorf("read dnsendpoint %s/%s: %w", s.ns, s.cfg.DNS.Object, err)
	case obj.Metadata.Labels[LabelFleet] != s.cfg.Service:
		return fmt.Errorf("dnsendpoint %s/%s exists and is not this fleet's (no label %s=%s): refusing to write it",
			s.ns, s.cfg.DNS.Object, LabelFleet, s.cfg.Service)
	}
	d.held = dnsHeld{exists: true, rv: obj.Metadata.ResourceVersion, spec: obj.Spec, state: obj.Metadata.Annotations[AnnotServers]}
	d.stale = false
	return nil
}

// entries are the fleet's entries the DNSEndpoint's annotation holds
// (when it is the registry); an annotation that does not parse holds none
// (the leader registers every server again and the next write repairs
// it), with a WARN.
func (d *dnsTarget) entries() map[string]fleet.Entry[spec] {
	out, err := decodeServers(d.held.state)
	if err != nil {
		d.s.log.Warn().Err(err).Str("dnsendpoint", d.s.cfg.DNS.Object).Msg("the DNSEndpoint's servers annotation does not parse: writing every server again")
		return map[string]fleet.Entry[spec]{}
	}
	return out
}

// want is the DNSEndpoint's spec and state annotation for current ("":
// no annotation, when the slices are the registry).
func (d *dnsTarget) want(current map[string]fleet.Entry[spec]) (kubeapi.DNSEndpointSpec, string) {
	c := d.s.cfg
	sp := kubeapi.DNSEndpointSpec{Endpoints: dnsRecords(*c.DNS, c.PortName, current)}
	if !c.NoSlices {
		return sp, ""
	}
	return sp, encodeServers(current)
}

// same reports whether the held object says what want says.
func (d *dnsTarget) same(sp kubeapi.DNSEndpointSpec, state string) bool {
	return d.held.exists && d.held.state == state && reflect.DeepEqual(normRecords(d.held.spec.Endpoints), normRecords(sp.Endpoints))
}

// normRecords is records with nil and empty target lists alike.
func normRecords(rs []kubeapi.DNSRecord) []kubeapi.DNSRecord {
	out := make([]kubeapi.DNSRecord, 0, len(rs))
	for _, r := range rs {
		if len(r.Targets) == 0 {
			r.Targets = nil
		}
		out = append(out, r)
	}
	return out
}

// sync writes the DNSEndpoint for current when it differs from what is
// held (0 writes otherwise: quiet rounds write nothing), after reading
// the leader Lease back, with the held resourceVersion as precondition
// (a create when it does not exist). A conflict makes the next sync read
// it again, and says ErrNotLeader when the Lease moved.
func (d *dnsTarget) sync(ctx context.Context, current map[string]fleet.Entry[spec]) (int, error) {
	s := d.s
	if d.stale {
		if err := d.read(ctx); err != nil {
			return 0, err
		}
	}
	sp, state := d.want(current)
	if d.same(sp, state) {
		return 0, nil
	}
	if len(state) > maxServersAnnotation {
		return 0, fmt.Errorf("dnsendpoint %s/%s: the servers annotation would be %d bytes, over %d: too many servers for a DNSEndpoint alone (turn the EndpointSlices on: k8s_write endpointslices,dnsendpoint)",
			s.ns, s.cfg.DNS.Object, len(state), maxServersAnnotation)
	}
	if err := s.leader.check(ctx); err != nil {
		return 0, err
	}
	obj := kubeapi.DNSEndpoint{APIVersion: kubeapi.DNSEndpoints.APIVersion(), Kind: kubeapi.DNSEndpoints.Kind(),
		Metadata: kubeapi.Meta{Name: s.cfg.DNS.Object, Namespace: s.ns, ResourceVersion: d.held.rv,
			Labels: map[string]string{LabelFleet: s.cfg.Service, "app.kubernetes.io/managed-by": "udp-discovery-bridge"}},
		Spec: sp}
	if state != "" {
		obj.Metadata.Annotations = map[string]string{AnnotServers: state}
	}
	var out kubeapi.DNSEndpoint
	var err error
	if d.held.exists {
		err = s.o.Apply(ctx, kubeapi.DNSEndpoints, obj.Metadata.Name, &obj, &out)
	} else {
		err = s.o.Create(ctx, kubeapi.DNSEndpoints, &obj, &out)
	}
	if err != nil {
		d.stale = true
		if kubeapi.IsConflict(err) { // 409: a changed resourceVersion, or created meanwhile
			if cerr := s.leader.check(ctx); errors.Is(cerr, fleet.ErrNotLeader) {
				return 0, fmt.Errorf("%w (write of dnsendpoint %s refused: %v)", cerr, obj.Metadata.Name, err) //nolint:errorlint // the term's end is the error; the refused write is only its context
			}
		}
		if kubeapi.IsNotFound(err) {
			return 0, fmt.Errorf("write dnsendpoint %s/%s: %w (is external-dns's DNSEndpoint CRD installed? the chart installs it with dnsEndpoint.installCRD: true)", s.ns, obj.Metadata.Name, err)
		}
		return 0, fmt.Errorf("write dnsendpoint %s/%s: %w", s.ns, obj.Metadata.Name, err)
	}
	s.countWrite("dnsendpoint")
	d.held = dnsHeld{exists: true, rv: out.Metadata.ResourceVersion, spec: sp, state: state}
	return 1, nil
}

// applyPlan records p in current, as the slices' writer does, when the
// DNSEndpoint is the registry.
func applyPlan(p fleet.Plan[spec], current map[string]fleet.Entry[spec]) {
	for _, e := range p.Remove {
		delete(current, e.Key)
	}
	for _, e := range p.Fail {
		e.Spec.ready, e.Passing = false, false
		current[e.Key] = e
	}
	for _, l := range [][]fleet.Entry[spec]{p.Pass, p.Update, p.Register} {
		for _, e := range l {
			e.Passing, e.Since, e.New = true, time.Time{}, false
			current[e.Key] = e
		}
	}
}

// dnsRecords are the records of the ready servers of current: the A
// record cfg.Name with every ready address; with SRV, an A record
// <a-b-c-d>.<Name> per address and the SRV record _<port>._tcp.<Name>
// naming each ready server's (address, port). Sorted, so that the same set
// always spells the same spec.
func dnsRecords(cfg DNSConfig, portName string, current map[string]fleet.Entry[spec]) []kubeapi.DNSRecord {
	ttl := int64(cfg.TTL / time.Second)
	var ready []netip.AddrPort
	for _, e := range current {
		if e.Passing && e.Spec.ready {
			ready = append(ready, e.Spec.addr)
		}
	}
	if len(ready) == 0 {
		return []kubeapi.DNSRecord{}
	}
	slices.SortFunc(ready, netip.AddrPort.Compare)
	var addrs []string
	for _, a := range ready {
		addrs = append(addrs, a.Addr().String())
	}
	addrs = slices.Compact(addrs)
	out := []kubeapi.DNSRecord{{DNSName: cfg.Name, RecordType: "A", Targets: addrs, RecordTTL: ttl}}
	if !cfg.SRV {
		return out
	}
	var srv []string
	for _, ip := range addrs {
		out = append(out, kubeapi.DNSRecord{DNSName: hostName(ip, cfg.Name), RecordType: "A", Targets: []string{ip}, RecordTTL: ttl})
	}
	for _, a := range ready {
		// The target is a name with its final dot: external-dns refuses
		// an SRV target without it.
		srv = append(srv, fmt.Sprintf("0 0 %d %s.", a.Port(), hostName(a.Addr().String(), cfg.Name)))
	}
	return append(out, kubeapi.DNSRecord{DNSName: "_" + portName + "._tcp." + cfg.Name, RecordType: "SRV", Targets: srv, RecordTTL: ttl})
}

// hostName is the per-server name of address ip under name: 10-1-0-5.<name>.
func hostName(ip, name string) string { return strings.ReplaceAll(ip, ".", "-") + "." + name }

// encodeServers spells current as AnnotServers.
func encodeServers(current map[string]fleet.Entry[spec]) string {
	var b strings.Builder
	for _, k := range slices.SortedFunc(maps.Keys(current), func(a, b string) int {
		return current[a].Spec.addr.Compare(current[b].Spec.addr)
	}) {
		e := current[k]
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.Spec.addr.String())
		switch {
		case !e.Passing:
			b.WriteString("=u" + strconv.FormatInt(e.Since.Unix(), 10))
		case e.Spec.ready:
			b.WriteString("=r")
		default:
			b.WriteString("=n")
		}
	}
	return b.String()
}

// decodeServers parses AnnotServers.
func decodeServers(s string) (map[string]fleet.Entry[spec], error) {
	out := map[string]fleet.Entry[spec]{}
	if s == "" {
		return out, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		addr, st, ok := strings.Cut(item, "=")
		a, err := netip.ParseAddrPort(addr)
		if !ok || err != nil || !a.Addr().Is4() || st == "" {
			return nil, fmt.Errorf("annotation %s: bad item %q", AnnotServers, item)
		}
		e := fleet.Entry[spec]{Key: a.String(), Spec: spec{addr: a}, Passing: true}
		switch {
		case st == "r":
			e.Spec.ready = true
		case st == "n":
		case st[0] == 'u':
			sec, err := strconv.ParseInt(st[1:], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("annotation %s: bad item %q", AnnotServers, item)
			}
			e.Passing, e.Since = false, time.Unix(sec, 0)
		default:
			return nil, fmt.Errorf("annotation %s: bad item %q", AnnotServers, item)
		}
		if _, dup := out[e.Key]; dup {
			return nil, fmt.Errorf("annotation %s: %s listed twice", AnnotServers, e.Key)
		}
		out[e.Key] = e
	}
	return out, nil
}
