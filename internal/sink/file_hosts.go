package sink

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// The placeholders of file_hosts_name.
const (
	// HostsIPDashed is the server's IPv4 address with dashes for dots
	// (10-1-2-3), as Kubernetes spells pod addresses in DNS names.
	HostsIPDashed = "{ip_dashed}"
	// HostsPort is the server's port in decimal (8000).
	HostsPort = "{port}"
)

// HostsNames are the names the hosts format gives the ready servers.
type HostsNames struct {
	// Pattern is file_hosts_name: a DNS name holding HostsIPDashed once
	// and HostsPort at most once, which Name expands for each server.
	Pattern string
	// Shared is file_hosts_shared_name: the name of every ready server.
	Shared string
}

// Name returns the name Pattern gives the server at a (an IPv4 address;
// an IPv4-mapped one is unmapped).
func (n HostsNames) Name(a netip.AddrPort) string {
	// Neither expansion holds a brace: the second cannot see the first's.
	dashed := strings.ReplaceAll(a.Addr().Unmap().String(), ".", "-")
	return strings.ReplaceAll(strings.ReplaceAll(n.Pattern, HostsIPDashed, dashed), HostsPort, strconv.Itoa(int(a.Port())))
}

// Check checks n with the keys that declare its fields, as a loaded
// configuration's values were checked when they were read: Pattern
// expands to a valid DNS name for every IPv4 address and port, Shared is
// a valid DNS name.
func (n HostsNames) Check() error {
	for _, f := range []struct {
		k config.Key
		v string
	}{{hostsNameKey(), n.Pattern}, {hostsSharedNameKey(), n.Shared}} {
		if f.v == "" {
			return fmt.Errorf("%s: empty", f.k.Name)
		}
		if err := f.k.Check(f.v); err != nil {
			return fmt.Errorf("%s %q: %w", f.k.Name, f.v, err)
		}
	}
	return nil
}

// NewFileHosts is NewFile writing a hosts(5) file of the ready servers
// (hostsFormat) under names, which must pass HostsNames.Check.
func NewFileHosts(path string, clk clock.Clock, names HostsNames) (*File, error) {
	if err := names.Check(); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	f, err := NewFile(path, clk)
	if err != nil {
		return nil, err
	}
	f.format = hostsFormat{names: names}
	return f, nil
}

// hostsHeader is the first line of every hosts file the sink writes; a
// file without it is not one (decode), and is replaced.
const hostsHeader = "# udp-discovery-bridge, file_format hosts: the ready servers; replaced whenever they change"

// hostsFormat is a hosts(5) file, as CoreDNS's hosts plugin, dnsmasq and
// Pi-hole read it: after hostsHeader, one line per address of a ready
// server, in address order,
//
//	10.0.0.1 django-10-0-0-1.udb.internal django.udb.internal # ports 8000
//
// the address, the name Pattern gives each ready server at it (by port,
// each once), the shared name, and a comment with those servers' ports
// (every consumer ignores it; decode reads it back). An address is on one
// line only, so that no name resolves to it twice. The file holds no
// timestamp: it changes only when the ready servers do.
type hostsFormat struct {
	names HostsNames
}

// key implements fileFormat: the whole document.
func (h hostsFormat) key(snap endpoint.Snapshot) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(hostsHeader + "\n")
	eps := h.listed(snap).Endpoints
	for i := 0; i < len(eps); {
		addr := eps[i].Addr.Addr()
		var names, ports []string
		for ; i < len(eps) && eps[i].Addr.Addr() == addr; i++ {
			names = append(names, h.names.Name(eps[i].Addr))
			ports = append(ports, strconv.Itoa(int(eps[i].Addr.Port())))
		}
		// Without HostsPort in the pattern, the servers of one address
		// share their name.
		names = append(slices.Compact(names), h.names.Shared)
		fmt.Fprintf(&b, "%s %s # ports %s\n", addr, strings.Join(names, " "), strings.Join(ports, " "))
	}
	return b.Bytes(), nil
}

// document implements fileFormat: the key is the document.
func (hostsFormat) document(_ endpoint.Snapshot, key []byte, _ time.Time) ([]byte, error) {
	return slices.Clone(key), nil
}

// listed implements fileFormat: the ready servers (readyOnly, as the
// prometheus format lists them by default: a hosts file has no way to say
// a listed server is not ready) that hostsCarries, IPv4-mapped addresses
// unmapped, in address order.
func (hostsFormat) listed(snap endpoint.Snapshot) endpoint.Snapshot {
	ready := readyOnly(snap)
	eps := ready.Endpoints[:0]
	for _, e := range ready.Endpoints {
		if a, ok := hostsCarries(e.Addr); ok {
			e.Addr = a
			eps = append(eps, e)
		}
	}
	ready.Endpoints = snapshotOf(eps).Endpoints
	return ready
}

// hostsCarries returns a as the hosts format lists it (an IPv4-mapped
// address unmapped) and whether it does: only IPv4 addresses, the ones
// file_hosts_name is checked to make valid names of (discovery speaks
// IPv4 only, so no other address is ever held), and, as the prometheus
// format, never an invalid address or port 0. Loopback and link-local
// addresses are listed, as every file format lists them.
func hostsCarries(a netip.AddrPort) (netip.AddrPort, bool) {
	ip := a.Addr().Unmap()
	if !ip.Is4() || a.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, a.Port()), true
}

// decode implements fileFormat: a file that starts with hostsHeader is
// one of ours; each line gives back the servers of its address and the
// ports of its comment. Lines that do not parse are skipped (the next
// write replaces them); the key is the whole file.
func (hostsFormat) decode(b []byte) ([]endpoint.Endpoint, []byte, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(hostsHeader+"\n"))
	if !ok {
		return nil, nil, false
	}
	var eps []endpoint.Endpoint
	for line := range strings.Lines(string(rest)) {
		entry, comment, _ := strings.Cut(line, "#")
		fields := strings.Fields(entry)
		ports, ok := strings.CutPrefix(strings.TrimSpace(comment), "ports ")
		if len(fields) < 2 || !ok {
			continue
		}
		ip, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, p := range strings.Fields(ports) {
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				continue
			}
			if a, ok := hostsCarries(netip.AddrPortFrom(ip, uint16(n))); ok {
				eps = append(eps, endpoint.Endpoint{Addr: a})
			}
		}
	}
	return eps, b, true
}
