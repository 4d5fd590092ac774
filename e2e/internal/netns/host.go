package netns

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
)

// AddLink plugs one more veth leg into br, addressed cidr, brings it up, and
// returns its device name inside the host. The address gets the subnet's
// broadcast address ("brd +"), as DHCP or a static config would set it.
func (h *Host) AddLink(br *Bridge, cidr string) string {
	l := h.lab
	l.t.Helper()
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() {
		l.t.Fatalf("netns: host %s: address %q is not an IPv4 CIDR: %v", h.Name, cidr, err)
	}
	l.mu.Lock()
	port := l.nextPort
	l.nextPort++
	l.mu.Unlock()
	link := &Link{
		Dev:    l.devName("eth", len(h.links)),
		Peer:   l.devName("p", port),
		Bridge: br,
		Prefix: pfx,
	}
	// Created inside the switch namespace, host end moved straight into the host.
	l.ipCmd(br.in("link", "add", link.Peer, "type", "veth", "peer", "name", link.Dev, "netns", h.NS)...)
	l.ipCmd(br.in("link", "set", link.Peer, "master", br.Dev, "up")...)
	l.ipCmd("-n", h.NS, "addr", "add", cidr, "brd", "+", "dev", link.Dev)
	l.ipCmd("-n", h.NS, "link", "set", link.Dev, "up")
	h.links = append(h.links, link)
	return link.Dev
}

// SetDefaultRoute adds a default route via gw (an address on one of the host's
// subnets).
func (h *Host) SetDefaultRoute(gw string) {
	h.lab.t.Helper()
	if _, err := netip.ParseAddr(gw); err != nil {
		h.lab.t.Fatalf("netns: host %s: gateway %q: %v", h.Name, gw, err)
	}
	h.lab.ipCmd("-n", h.NS, "route", "add", "default", "via", gw)
}

// Links returns the host's legs in the order they were added.
func (h *Host) Links() []*Link { return slices.Clone(h.links) }

// Dev returns the host's device on br, or "" when it has none.
func (h *Host) Dev(br *Bridge) string {
	if l := h.link(br); l != nil {
		return l.Dev
	}
	return ""
}

// IP returns the host's address on br, or, with no argument, on its first link.
func (h *Host) IP(br ...*Bridge) netip.Addr {
	var l *Link
	switch {
	case len(br) > 0:
		l = h.link(br[0])
	case len(h.links) > 0:
		l = h.links[0]
	}
	if l == nil {
		return netip.Addr{}
	}
	return l.Prefix.Addr()
}

func (h *Host) link(br *Bridge) *Link {
	for _, l := range h.links {
		if l.Bridge == br {
			return l
		}
	}
	return nil
}

// SetLinkDown sets the named devices of the host down; with no names, all its
// links. It returns the first failure.
func (h *Host) SetLinkDown(devs ...string) error { return h.setLinks("down", devs) }

// SetLinkUp is the reverse of SetLinkDown.
func (h *Host) SetLinkUp(devs ...string) error { return h.setLinks("up", devs) }

func (h *Host) setLinks(state string, devs []string) error {
	if len(devs) == 0 {
		for _, l := range h.links {
			devs = append(devs, l.Dev)
		}
	}
	for _, d := range devs {
		out, err := exec.Command(h.lab.ip, "-n", h.NS, "link", "set", d, state).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip -n %s link set %s %s: %w: %s", h.NS, d, state, err, bytes.TrimSpace(out))
		}
	}
	return nil
}
