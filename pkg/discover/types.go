package discover

import (
	"errors"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Server is one discovered server: upstream's DiscoveryResult(ip, port,
// raw_response, extra). ip, port and raw_response are IP, Port and Raw;
// upstream's only extra, extra["source_address"], is Source. The other
// fields are extras upstream lacks: the interface the reply came in on and
// its network, the IP the reply advertised (PayloadIP), how IP was chosen
// (AddressFrom), whether the reply carried its port, and when it arrived.
// The JSON names are upstream's where upstream has the field.
type Server struct {
	// IP and Port are what to register: IP after the address policy, Port
	// from the reply or DefaultPort.
	IP   netip.Addr `json:"ip"`
	Port uint16     `json:"port"`
	// PayloadIP is the IP the server advertised in its reply.
	PayloadIP netip.Addr `json:"payload_ip"`
	// PortFromReply is true when the reply carried an explicit port.
	PortFromReply bool `json:"port_from_reply"`
	// Source is the UDP source address of the reply.
	Source netip.AddrPort `json:"source_address"`
	// Interface is the local interface the reply arrived on ("" if unknown);
	// Network is that interface's network, the LAN segment the server was
	// seen on (invalid if unknown).
	Interface string       `json:"interface"`
	Network   netip.Prefix `json:"network"`
	// Raw is the reply payload as received (the decrypted plaintext in
	// encrypted mode), decoded as UTF-8 with invalid bytes dropped.
	Raw string `json:"raw_response"`
	// AddressFrom is "payload" or "source": where IP came from.
	AddressFrom AddressPolicy `json:"address_from"`
	// Received is when the server's first reply of the round arrived: the
	// Client's clock, read as that reply was ingested (not at the end of the
	// round). Replies to later bursts that repeat the endpoint leave it alone.
	Received time.Time `json:"received"`
}

// Endpoint is the server's identity: (IP, Port).
func (s Server) Endpoint() netip.AddrPort { return netip.AddrPortFrom(s.IP, s.Port) }

// Stats counts what happened to the datagrams of one round.
type Stats struct {
	ProbesSent  int `json:"probes_sent"`  // broadcast + retries + scan probes sent
	SendErrors  int `json:"send_errors"`  // probes the kernel refused
	Replies     int `json:"replies"`      // datagrams received
	Valid       int `json:"valid"`        // parsed and admitted (duplicates, refused by source_cap and dropped included)
	Duplicates  int `json:"duplicates"`   // valid but (ip, port) already seen
	Invalid     int `json:"invalid"`      // wrong prefix, bad ip/port, garbage
	Oversized   int `json:"oversized"`    // longer than MaxDatagram
	Rejected    int `json:"rejected"`     // encrypted: bad token, wrong key, too old
	Dropped     int `json:"dropped"`      // new servers beyond MaxReplies
	ScanTargets int `json:"scan_targets"` // hosts the subnet scan probed

	// Refused counts the replies the admission policy refused, by
	// Refusal (Refused[RefusedOffLink]).
	Refused RefusalCounts `json:"refused"`
	// KernelDrops is how many datagrams the kernel dropped on the round's
	// socket because its receive buffer was full (SO_MEMINFO; 0 where the
	// OS does not say).
	KernelDrops int `json:"kernel_drops"`

	// The rolling subnet scan (zero without one). ScanHosts is the hosts of
	// the scan CIDRs; ScanCovered how many of them the cursor passed this
	// round (ScanTargets plus our own addresses, never probed), at most
	// ScanHosts; ScanCycles how many times this round completed a pass
	// over all hosts (0 or 1); ScanProgress the Client's position in the
	// current cycle after the round, 0..1. ScanKeepAlives counts the
	// keep-alive probes (Client.KeepAlive), ScanSeconds the time from the
	// first scan probe to the last (for the rate reached). ScanRate is the
	// configured rate, ScanOnLinkRate the pace of on-link hosts when some
	// were scanned (see NeighParams).
	ScanHosts      int     `json:"scan_hosts"`
	ScanCovered    int     `json:"scan_covered"`
	ScanCycles     int     `json:"scan_cycles"`
	ScanProgress   float64 `json:"scan_progress"`
	ScanKeepAlives int     `json:"scan_keepalives"`
	ScanSeconds    float64 `json:"scan_seconds"`
	ScanRate       int     `json:"scan_rate"`
	ScanOnLinkRate float64 `json:"scan_onlink_rate"`
}

// Result is the outcome of one round.
type Result struct {
	// Servers in order of first arrival, deduplicated by (IP, Port).
	Servers []Server
	// Interfaces are those probes were sent on.
	Interfaces []iface.Interface
	Stats      Stats
	// Started is when the round began and Duration how long it ran, both on
	// the Client's clock.
	Started  time.Time
	Duration time.Duration
	// RecvBuffer is the socket receive buffer the kernel granted (bytes, as
	// SO_RCVBUF reports it), for diagnostics.
	RecvBuffer int
}

var (
	// ErrNoInterfaces means no interface survived selection (none up, or the
	// whitelist/blacklist excluded all). The round is a failed round.
	ErrNoInterfaces = errors.New("no usable IPv4 interface selected")
	// ErrNoProbeSent means no broadcast probe could be sent, in the first burst
	// nor in any retry (link down, no route). The round is a failed round.
	ErrNoProbeSent = errors.New("no probe could be sent on any interface")
)
