// Package source is where the relay's targets come from: the registry the
// fleet writes (a Consul catalog's passing instances, the Kubernetes
// sink's ready EndpointSlice endpoints) or the bridge's own set of ready
// servers (Local), each kept by a Keeper, which is the relay.Targets the
// engine reads.
//
// A registry is read through a Reader (catalog.PassingReader,
// kubernetes.ReadyReader) by Run: blocking reads back to back, or polls
// every so often, each bounded in time, a failed one retried after a
// pause. Every successful read replaces the Keeper's set (logged when it
// changes); a failed one leaves it as it is.
//
// # How long a set is kept
//
// A Keeper keeps the last set it read and relays it while it is no older
// than the source's Period (the longest a healthy source goes between two
// successful reads: a blocking read's wait, the poll, a round) plus
// MaxStale (relay_max_stale); past that the set is stale and the engine
// answers nothing (relay.ReasonStaleTargets) until a read succeeds again.
// The rule is on the age of the set alone, so a read that hangs counts as
// one that failed. The transitions (stale, read again) are logged, and
// the state is on /readyz (ReadyNotes) and in the metrics (State).
package source
