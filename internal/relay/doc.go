// Package relay is the engine of the discovery relay: it answers
// django-udp-discovery probes arriving on chosen interfaces with a set of
// servers provided from outside (Targets: what the fleet's registry holds
// on other segments), in the stock reply format, so that an unchanged
// client on a segment without a server of its own finds the servers of
// the others. It is the core only: it reads no registry (package source
// does) and declares no keys (internal/config does; bridge run wires it,
// cmd/bridge/runrelay.go); docs/design/relay.md argues its rules and
// defaults, docs/operations/relay.md is how to run it.
//
// # Rules
//
// Each datagram read from the Conn is answered only if it passes every
// rule below, tested in this order; the first that fails counts the
// datagram under its Reason (Stats.Dropped) and nothing is sent:
//
//  1. It arrived on one of Config.Interfaces, by the interface index the
//     kernel reports (IP_PKTINFO); an unknown index is foreign too
//     (ReasonForeignInterface).
//  2. Its payload is the probe, through the discover.ProbeGate that bridge
//     respond uses as well: plaintext mode, Config.Message byte for byte;
//     encrypted mode, a Fernet token under Config.Key whose plaintext is
//     Message, stamped no more than MaxTokenAge+ClockSkew ago and no more
//     than ClockSkew ahead (ReasonBadPayload, ReasonWrongKey,
//     ReasonTokenAge).
//  3. Its source is an address a single host sends from: not 0/8,
//     255.255.255.255, multicast, 240/4, port 0, nor the network or
//     broadcast address of any of the host's networks (the gate's
//     discover.ProbeRefusal; ReasonSource).
//  4. Its source is on one of the receiving interface's own IPv4 networks
//     (ReasonOffLink), and is not one of this host's addresses
//     (ReasonOwnAddress): no reply leaves the link the probe came from,
//     and the relay never answers itself.
//  5. The Targets source offers a set (ok) no older than MaxTargetAge when
//     that is set (ReasonNoTargets, ReasonStaleTargets).
//  6. The targets answered are the set's IPv4 addresses not on the
//     receiving interface's networks (a server on the link answers there
//     itself), at most MaxReplies of them; none left is ReasonNoTargets.
//     The set is walked as a ring: each answered probe starts just after
//     the last target the previous answered probe took, so consecutive
//     probes page through a set larger than MaxReplies and every target is
//     relayed equally often. The relay does not deduplicate or sort the
//     set: the source gives it in the order it wants pages in.
//  7. With a Delay, the replies must fit in the delayed queue
//     (QueueSize replies; ReasonQueueFull): checked before the rate limits
//     so that a probe dropped here costs its source nothing.
//  8. The gate charges the replies to the source's token bucket (Rate
//     replies a second after a burst of Burst) and then to the global
//     budget (GlobalRate after GlobalBurst), all or nothing
//     (ReasonRate, ReasonGlobalRate). A probe refused for either costs
//     nothing from the other.
//
// An admitted probe's replies go to its source address and port, Delay
// after it was read: one goroutine sends every delayed reply from a ring
// of QueueSize entries allocated once, so a flood creates no timers or
// goroutines. Each reply is Prefix + IP[:PORT] as a stock server writes
// it (discover.AppendReply; no port when the target has none); in
// encrypted mode it is sealed under Key when it is sent.
//
// # Amplification bound
//
// A probe is answered with at most MaxReplies replies of at most
// len(Prefix) + 21 bytes ("255.255.255.255:65535") each, and a probe that
// passes is exactly len(Message) bytes (plaintext) or a token of Message.
// With the defaults (MaxReplies 8, "DISCOVER_SERVER", "SERVER_IP:") that
// is at most 8 × 31 = 248 payload bytes for 15: 16.5 times, or 11.0 times
// on the wire with the 28 bytes of IPv4 and UDP headers per datagram
// (8 × 59 / 43); a typical reply ("SERVER_IP:10.213.1.11:8000") makes it
// 10.0 on the wire. Encrypted, a probe is a 100-byte token and a reply a
// 120-byte one: 9.6 times in payload, 9.25 on the wire. Over time, one
// source gets at most Burst + Rate × t replies (32 + 8 t with the
// defaults) and all sources together GlobalBurst + GlobalRate × t
// (200 + 100 t: at most 5.9 KB/s on the wire sustained in plaintext,
// 14.8 KB/s encrypted), and only a host on the receiving interface's
// link can be a destination. What the relay cannot tell: a forged source
// on the link (a neighbour, or a directed broadcast from afar that a
// router forwards with a forged on-link source) from a real one; such a
// forgery spends the forged address's allowance and the global budget.
//
// # Sockets
//
// The production Conn is Sockets (ListenBroadcast): one socket per
// broadcast address probes arrive at, 255.255.255.255 and each relay
// network's directed broadcast (the engine hands them over through
// Binder at start and when the interfaces' networks change), never the
// wildcard address. The kernel gives every socket bound to the wildcard
// or to a broadcast probe's destination a copy of it, but a unicast probe
// to one socket only: a relay on the wildcard address bound after a stock
// server on the same host took every unicast probe from the server
// (measured in e2e/relay). A unicast probe never reaches the relay.
//
// Stats counts datagrams and bytes in and out, so the bytes out per byte
// in can be measured: the unit tests measure them (TestAmplification).
package relay
