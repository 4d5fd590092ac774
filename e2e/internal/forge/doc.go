// Package forge plays the attacker on a lab LAN: it sends UDP datagrams
// with forged IPv4 source addresses and ports from inside a namespace host
// of a netns.Lab, so end-to-end tests can forge discovery replies.
//
// The work is done by a helper program, cmd/forger, built once per test
// binary (Bin; TestMain calls Cleanup) and run in the host with
// netns.Host.Start. It writes whole IPv4+UDP packets (both checksums) to a
// raw socket (IPPROTO_RAW, so IP_HDRINCL), so the source can be anything:
// an on-link address nobody holds, an off-link one, the victim's own. Modes
// and their Go entry points:
//
//   - Send: a list of datagrams, repeated and paced.
//   - Answer: sniff and answer. A UDP socket on 0.0.0.0:9999 (SO_REUSEADDR,
//     SO_REUSEPORT, SO_BROADCAST) reads the bridge's broadcast probe; each
//     probe from A:p gets PerProbe forged replies to A:p, their sources
//     and "SERVER_IP:{ip}:{port}" identities drawn from a counter that runs
//     on across probes, so every probe meets fresh identities.
//   - Spray: one forged reply to every port of a range (the ephemeral
//     32768-60999 by default) at a rate, without seeing the probe.
//   - Listen and Probe: the other side, to check the attacks: a receiver
//     that reports each datagram's source as the victim's socket sees it (or,
//     with a raw socket, every UDP datagram the host accepts, on any port),
//     and a client that broadcasts a probe like the bridge and counts the
//     replies, their distinct payloads and the ones no earlier round saw.
//   - AllocArgv: not an attack; a process that allocates memory in steps,
//     for the memory cgroup tests.
//
// Each run prints JSON lines: "ready" once its sockets are open (Start
// waits for it), events ("probe", "recv", "round", "alloc") and a final
// "done" with counts (Summary), also on SIGTERM (Finish).
//
// What the lab showed (kernel 6.18, 2 vCPU, veth pairs on a Linux bridge,
// TestForgedSourceReachesVictim pins it). The victim's socket sees the
// forged address and port. A datagram whose source is the victim's own
// address never arrives (a martian source while accept_local is 0), whatever
// rp_filter says. An on-link forged source (10.213.1.77, no such host)
// always arrives: rp_filter checks routes, not neighbours. An off-link
// source (198.51.100.9) arrives with rp_filter 0; strict (1) drops it when
// the victim has no default route, or when its default route leaves by
// another interface; loose (2) drops it only without a default route. With
// the default route on the LAN the attack comes from, neither mode stops
// it. New namespaces here start with rp_filter 0, so tests set it.
//
// Rates measured here: answering a probe with 100,000 forged replies, one
// sendto each, takes 0.37-0.46 s (216k-270k datagrams/s from one core),
// and a prober with an 8 MiB receive buffer on the same LAN read all
// 100,000, every one a new identity. A spray of the 28,232 ephemeral ports
// paced at 50,000/s reached every port.
package forge
