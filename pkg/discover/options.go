package discover

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// AddressPolicy says which address a reply registers under.
type AddressPolicy string

const (
	// AddressAuto takes the payload IP unless it is loopback, unspecified,
	// multicast or broadcast; then the packet's source address.
	AddressAuto AddressPolicy = "auto"
	// AddressPayload always takes the IP the server wrote in its reply.
	AddressPayload AddressPolicy = "payload"
	// AddressSource always takes the reply's UDP source address.
	AddressSource AddressPolicy = "source"
)

// Options configure a discovery round. Zero values are not defaults: build
// Options with DefaultOptions (the upstream client's defaults) or
// LoadOptions / OptionsFromEnv (defaults, then the upstream environment
// variables, then overrides) and change fields from there.
type Options struct {
	Port        uint16        // discovery_port: UDP port the servers listen on
	Message     []byte        // discovery_message: probe payload (plaintext)
	Prefix      []byte        // response_prefix
	Timeout     time.Duration // deadline for the whole round
	Retries     int           // extra probe sends spread over the round
	DefaultPort uint16        // port when a reply carries none
	AddressFrom AddressPolicy

	// One ends the round at the first valid reply.
	One bool
	// Settle, when > 0, ends the round once no new server has been seen for
	// this long after the last probe was sent.
	Settle time.Duration

	// SubnetScan enables unicast probes to every host of ScanCIDRs at
	// ScanRate probes per second.
	SubnetScan bool
	ScanCIDRs  []netip.Prefix
	ScanRate   int

	// AdvertisedAddresses (advertised_addresses) says which advertised
	// addresses a round admits: AdvertisedLocal (the default; "" means it)
	// or AdvertisedAny. Admission refuses more than this, whatever it says:
	// see Refusal.
	AdvertisedAddresses AdvertisedPolicy
	// MaxServersPerSource (max_servers_per_source) caps the new servers one
	// source address introduces in a round; more are refused
	// (RefusedSourceCap). 0 means DefaultMaxServersPerSource.
	MaxServersPerSource int

	// MaxReplies caps the servers kept per round; further new servers are
	// counted in Stats.Dropped.
	MaxReplies int
	// MaxDatagram is the largest reply accepted; longer ones are counted as
	// oversized and dropped.
	MaxDatagram int
	// RecvBuffer is the socket receive buffer requested (bytes).
	RecvBuffer int

	// Key enables encrypted (Fernet) mode when non-nil.
	Key *Key
	// MaxTokenAge bounds the age of an encrypted reply; ClockSkew is the
	// tolerance for replies stamped in the future or slightly too old.
	MaxTokenAge time.Duration
	ClockSkew   time.Duration

	// Whitelist and Blacklist select interfaces by exact name
	// (interfaces_whitelist, interfaces_blacklist). The fields below choose
	// them the way node agents do; every one is a filter, and an address
	// with no broadcast domain (/31, /32) is never probed whatever they say.
	// The order they are applied in, which decides the rule an interface is
	// reported skipped under, is iface.Rules'.
	Whitelist []string
	Blacklist []string
	// InterfaceRegex (interfaces_regex) keeps only interfaces whose whole
	// name matches this RE2 pattern ("eth[0-9]+|ens[0-9]+"); empty: off.
	InterfaceRegex string
	// InterfaceSkipRegex (interfaces_skip_regex) skips interfaces whose
	// whole name matches this pattern; empty: off.
	InterfaceSkipRegex string
	// InterfaceCIDRs (interfaces_cidrs) keeps only addresses inside one of
	// these networks; empty: off.
	InterfaceCIDRs []netip.Prefix
	// InterfaceCanReach (interfaces_can_reach) keeps only the interface
	// the kernel routes this address through (looked up each round,
	// nothing is sent to it); the zero Addr: off.
	InterfaceCanReach netip.Addr
	// SkipContainerInterfaces (interfaces_skip_container) skips container,
	// CNI and cluster-internal interfaces by name (iface.ContainerInterface:
	// docker0, cni0, veth*, cali*, flannel.*, kube-ipvs0, cilium_*, ...).
	SkipContainerInterfaces bool

	// Logger receives the logs of Discover, DiscoverOne and
	// SelectInterfaces; nil (the default) means no logging. New ignores it:
	// a Client logs to the *slog.Logger given to New.
	Logger *slog.Logger
}

// InterfaceRules returns the interface-selection fields of o as iface.Rules.
func (o Options) InterfaceRules() iface.Rules {
	return iface.Rules{
		Whitelist: o.Whitelist, Blacklist: o.Blacklist,
		Regex: o.InterfaceRegex, SkipRegex: o.InterfaceSkipRegex,
		CIDRs: o.InterfaceCIDRs, CanReach: o.InterfaceCanReach,
		SkipContainer: o.SkipContainerInterfaces,
	}
}

// Defaults applied when the corresponding Options field is zero, and the
// limits New enforces.
const (
	DefaultMaxDatagram = 1024
	DefaultRecvBuffer  = 8 << 20
	DefaultMaxTokenAge = 60 * time.Second
	DefaultClockSkew   = 30 * time.Second
	// MaxScanHosts bounds the hosts of all ScanCIDRs together.
	MaxScanHosts = 65536
	// maxUDPPayload is the largest IPv4 UDP payload.
	maxUDPPayload = 65507
)
