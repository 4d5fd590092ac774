package relay

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// view is one reading of the host's interfaces: what the relay checks a
// probe's interface and source against. Built by refresh, read through an
// atomic pointer, never modified once stored.
type view struct {
	// relayed are the networks of each relay interface, by index.
	relayed map[int]relayIf
	// own are this host's addresses, every interface's.
	own map[netip.Addr]struct{}
	// hostNets are the host's networks, every interface's (masked, sorted):
	// their network and broadcast addresses are refused as sources.
	hostNets []netip.Prefix
	// missing are the relay interfaces the listing did not show.
	missing []string
}

// relayIf is one relay interface: its name and its IPv4 networks (one per
// address, masked).
type relayIf struct {
	name string
	nets []netip.Prefix
}

// newView builds the view of the interfaces all for the relay interfaces
// names.
func newView(all []iface.Interface, names []string) *view {
	v := &view{relayed: map[int]relayIf{}, own: map[netip.Addr]struct{}{}}
	found := map[string]bool{}
	for _, i := range all {
		if !i.Addr.Is4() && !i.Addr.Is4In6() {
			continue
		}
		v.own[i.Addr.Unmap()] = struct{}{}
		if !i.Prefix.IsValid() || !i.Prefix.Addr().Unmap().Is4() {
			continue
		}
		p := netip.PrefixFrom(i.Prefix.Addr().Unmap(), i.Prefix.Bits()).Masked()
		v.hostNets = append(v.hostNets, p)
		if !slices.Contains(names, i.Name) || i.Index <= 0 {
			continue
		}
		found[i.Name] = true
		in := v.relayed[i.Index]
		in.name = i.Name
		if !slices.Contains(in.nets, p) {
			in.nets = append(in.nets, p)
		}
		v.relayed[i.Index] = in
	}
	slices.SortFunc(v.hostNets, netip.Prefix.Compare)
	v.hostNets = slices.Compact(v.hostNets)
	for _, n := range names {
		if !found[n] && !slices.Contains(v.missing, n) {
			v.missing = append(v.missing, n)
		}
	}
	return v
}

// describe is the view's relay interfaces for the log: "eth0=10.1.0.0/24".
func (v *view) describe() []string {
	var out []string
	for idx, in := range v.relayed {
		for _, p := range in.nets {
			out = append(out, fmt.Sprintf("%s(%d)=%s", in.name, idx, p))
		}
	}
	slices.Sort(out)
	return out
}

// broadcasts are the directed broadcast addresses of the relay
// interfaces' networks (none for a /31 or /32), sorted: where a Binder
// listens.
func (v *view) broadcasts() []netip.Addr {
	var out []netip.Addr
	for _, in := range v.relayed {
		for _, p := range in.nets {
			if p.Bits() > 30 {
				continue
			}
			out = append(out, cidr.Broadcast(p))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
