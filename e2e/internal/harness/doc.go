// Package harness is what the end-to-end tests of every area share: namespace
// LANs with `bridge respond` servers, the real bridge binary run inside them
// (one-shot commands and long-running `bridge run` processes, with a hermetic
// environment plus the test's), HTTP reads of a bridge's /metrics, /readyz
// and /sd/prometheus from inside its namespace, reads of Consul's catalog and
// health, the output formats of the stdout and file sinks and of the scan
// report, the app check settings the tests run with, and the documentation
// files tests take examples from.
//
// Every helper takes the test's testing.TB, fails it on errors of the
// harness itself, and cleans up with it. Nothing runs in the root network
// namespace: a discovery round there would broadcast to the machine's real
// network.
//
// The LANs:
//
//   - LAN (NewLAN): one segment, 10.213.1.0/24, a client at .10 and servers
//     from .11 up, for one-shot commands (Bridge, DiscoverJSON).
//   - RunLAN (NewRunLAN): the same segment, optionally with a Consul dev
//     agent inside the client's namespace (ConsulAddr), for `bridge run`
//     (StartRun, StartRunEnv) with its metrics at MetricsAddr.
//   - NewRoutedLab: a LAN and a transit segment behind a router, for routed
//     scans (RoutedServer).
//
// Package catalogh builds the catalog-mode lab (two segments, a Consul
// cluster) on top of this one.
package harness
