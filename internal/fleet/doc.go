// Package fleet is what a fleet of bridges does to keep one registry in line
// with what the bridges observe, whatever the registry: every bridge
// publishes an observation (package observation) to a shared store, one
// elected leader merges the observations of the live bridges into the
// desired set, and plans and writes what brings the registry there.
//
// A server is observed while at least one live bridge observes it; when the
// last observer goes its entry turns unobserved (critical) since that time,
// and it is removed once deregister_after has passed since. Holds keep this
// from costing servers what is only a gap in the observations: a start-up
// grace when a bridge starts leading and when the store answers again after
// failed reads (every bridge needs a round to publish), and a bridge's last
// good observation standing in while its keys do not decode.
//
// Each bridge that runs app checks (app_check) also publishes its verdict
// on each server it observes (observation format version 2; version 1 while
// it has none, so a fleet without app checks publishes what it always did).
// A verdict changes only on a transition (pending, ready, failing), so a
// bridge rewrites its observation on a transition, never per check. Merge
// makes one verdict of them: ready when at least one live observer's check
// passes, failing when every observer with a verdict says it fails, pending
// otherwise (Observed.Health, with the check's Output). A registry's Shape
// puts the verdict in its spec and its Compare reports a different one as
// Changed, so the leader rewrites a server once per transition of the
// fleet's verdict and quiet rounds write nothing. A failing verdict never
// removes a server: presence is the observations', readiness the checks'.
//
// The package is pure: no I/O and no clock of its own. The leader's loop
// (Leader.Run) reads through small interfaces defined here: a Store of
// observations and a Registry that reads and writes the entries, whose
// Shape spells a server as the registry does; it runs for one term of
// leadership, a context that ends when leadership does. The Consul sink
// (internal/sink/consul) provides them with sessions, KV, transactions and
// the catalog's node-per-server entries; another registry plugs in its own
// store and writer.
package fleet
