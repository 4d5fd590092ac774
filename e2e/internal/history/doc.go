// Package history is the offline half of the robustness harness (issue
// 30): the record of a run and its judge, as etcd's tests/robustness does.
//
// A scenario runner injects faults into a real lab (Consul with ACLs, LAN
// segments, bridges in catalog mode, responders) and records a history: a
// config, then timestamped events (servers starting and stopping to answer,
// bridges going down, paused or cut off, the registry down, wiped or
// refusing writes, faults, leader terms and writes, and a read of each sink
// every 100 ms). Write and Read keep a history as JSON lines. Check judges
// it against the invariants (NoLiveRemoval and the others, Invariants) and
// returns a Verdict whose text form is a fixture's golden file;
// SaveFixture keeps a failing history under testdata as a regression case.
//
// README.md defines the format and each invariant, with the reasoning
// behind each bound. The package uses the standard library only.
package history
