// Package discover finds django-udp-discovery servers on the local network
// by UDP broadcast: the Go face of the upstream Python client. Discover and
// DiscoverOne are upstream's discover and discover_one; OptionsFromEnv and
// LoadOptions build Options as upstream's load_config(**overrides) and
// ClientConfig.from_env() do (defaults < DISCOVERY_CLIENT_* environment <
// overrides); each Server is a DiscoveryResult. They use the host's
// interfaces and log nothing unless Options.Logger is set. Keys declares
// every discovery key once (name, variables, default, bounds, help):
// LoadOptions, New's validation and the bridge command all apply it, and a
// program may generate its own documentation or flags from it and fill
// Options with Options.Set.
//
// Underneath are the protocol's parts: the reply codec (ParseReply, plain
// and Fernet), a Client that runs rounds on any interface Lister
// (New, Client.Round, with statistics; Client.RoundNotify also reports each
// new server the moment its first reply is kept, for callers that act on
// a server before the round ends) and the server side: Responder, the
// admission of probes every answering side shares (ProbeGate: payload and
// key, source address, per-source and global rate limits) and the reply
// encoding (AppendReply).
//
// # Protocol
//
// A client sends a UDP datagram whose payload is exactly the discovery
// message (default "DISCOVER_SERVER") to the discovery port (default 9999)
// of each selected interface's broadcast address. A server whose payload
// comparison succeeds byte for byte replies unicast to the sender with the
// response prefix (default "SERVER_IP:") followed by its dotted-quad IPv4
// address and, optionally, ":port". Stock servers append no port; the
// client then uses DefaultPort (8000). ParseReply documents the exact
// accepted reply grammar, which follows the upstream Python client
// (whitespace stripped, octets 0..255 with leading zeros normalised).
//
// In encrypted mode both sides share a Fernet key (Key). The probe is a
// Fernet token of the message, freshly sealed for every send; the server
// decrypts it, checks the plaintext is the message and answers with a token
// of prefix + ip[:port]. Plaintext, garbage, wrong-key tokens and wrong
// inner messages get no reply. Unlike upstream, which decrypts without a
// TTL, both Client and Responder reject tokens older than MaxTokenAge +
// ClockSkew or newer than now + ClockSkew (replay bound).
//
// # A round and its timing, compared with upstream
//
// Round opens one IPv4 UDP socket (0.0.0.0:0, SO_BROADCAST, a large receive
// buffer since replies to a broadcast arrive as a burst), probes every
// selected broadcast address, and reads replies until the round ends.
//
//   - Deadline: Options.Timeout (or ctx's earlier deadline) bounds the whole
//     round. Upstream's timeout is an idle timeout that every datagram
//     restarts, so a chatty network stretches an upstream round without
//     limit; here a round never outlives its deadline.
//   - Retries: upstream ignores its retries setting. Here the probe burst is
//     resent Retries more times, at Timeout*i/(Retries+1) for i = 1..Retries,
//     so one lost datagram does not lose a server. Replies to every burst are
//     deduplicated by (IP, Port), first arrival wins.
//   - One: upstream's discover_one waits the whole timeout. With Options.One
//     the round returns as soon as the first valid reply is ingested.
//   - Settle: with Options.Settle > 0 the round also ends once Settle has
//     passed without a new server after the last scheduled probe (the last
//     retry and the end of the subnet scan) was sent.
//   - Subnet scan: upstream ignores enable_subnet_scan. Here, with
//     SubnetScan and ScanCIDRs, every host of those networks (at most
//     MaxScanHosts in total, never a network or broadcast address, our own
//     addresses skipped) also gets a unicast probe, paced at ScanRate per
//     second from a sending goroutine, so servers behind routers that drop
//     broadcast are found. The scan rolls: a Client keeps its position
//     across rounds, each round continues where the previous one stopped
//     and covers each host at most once, so every host is probed once per
//     cycle of Stats.ScanHosts / (ScanRate × Timeout) rounds (ScanPlan).
//     Servers outside broadcast reach that the caller still holds
//     (KeepAlive) get a unicast probe first in every round. Hosts of a
//     network directly connected to an interface need an ARP resolution
//     each, and every unanswered one occupies a neighbour-table entry for
//     up to NeighParams.Lifetime: they are paced at NeighParams.OnLinkRate
//     at most (about 7 per second with the kernel's defaults). Sends never
//     block past the deadline (a socket write deadline), and a probe due
//     after it is not sent.
//   - Bounds: datagrams longer than MaxDatagram, garbage, rejected tokens,
//     duplicates and new servers beyond MaxReplies are counted in Stats and
//     dropped; memory stays bounded by MaxReplies. The kernel's drops on
//     the round's socket are Stats.KernelDrops.
//   - Admission: before a reply becomes a server the round refuses, and
//     counts by Refusal in Stats.Refused, what no honest server sends: a
//     reply not from the discovery port; from a source neither on the
//     receiving interface's network nor a host this round probed by
//     unicast; an encrypted reply stamped before the round's start less
//     ClockSkew (a replay); an unroutable address (0/8, loopback,
//     link-local, multicast, 240/4) or a selected subnet's network or
//     broadcast address; an advertised address that is not the source and
//     lies outside the selected networks and the scan CIDRs (unless
//     AdvertisedAddresses is AdvertisedAny); more than MaxServersPerSource
//     new servers from one source. Refusals are logged once per source and
//     reason while they go on.
//
// A round that finds nothing is not an error; the first such round of a
// Client logs the segmented-network diagnosis of the selected interfaces.
// ErrNoInterfaces and ErrNoProbeSent mark failed rounds.
//
// Two clocks are involved. The clock.Clock given to New (and set as
// Responder.Clock) stamps Result.Started, Result.Duration and
// Server.Received (the arrival of a server's first reply of the round) and
// decides Fernet token ages. The round's deadline and retry schedule are
// measured on the real clock, as the kernel measures the socket's read
// deadline on it, and so is Settle; the clock given to New therefore
// cannot stretch or shorten a round.
//
// # Address policy
//
// A stock server advertises the address of its default route, computed once
// at start, and 127.0.0.1 when it has none; on multi-homed hosts the
// advertised address may also differ from the packet's source address.
// Options.AddressFrom chooses what a server is registered under:
//
//   - AddressAuto (default): the advertised (payload) IP, unless it is
//     loopback, unspecified, multicast or a broadcast address
//     (255.255.255.255 or a selected interface's broadcast); then the packet's
//     source address, logged once per (payload, source) pair per Client.
//   - AddressPayload: always the advertised IP (upstream's behaviour).
//   - AddressSource: always the packet's source address.
//
// Server keeps both (IP and PayloadIP, Source) and says which was used.
package discover
