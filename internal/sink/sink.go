// Package sink defines how the bridge exports what discovery sees: the Sink
// interface, the Factory that registers a sink with its settings, and the
// two simple sinks (stdout.go; file.go with file_section.go). Larger sinks
// live in packages of their own (internal/sink/consul); internal/sink/builtin lists the sinks
// a build has.
//
// A sink is handed the complete desired set (an endpoint.Snapshot) after every
// completed round, and as soon as new servers answer during a round, and
// brings its registry in line with it. Because each call
// carries the whole set, a sink that fell behind simply applies the newest
// snapshot: there is no queue of stale changes to replay.
package sink

import (
	"context"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Sink exports snapshots to one registry.
type Sink interface {
	// Name is the sink's short name ("stdout", "file", "consul"), used in
	// logs and metric labels.
	Name() string
	// Apply brings the registry in line with s. It is called once per
	// completed round (even when nothing changed, so heartbeat-style sinks can
	// refresh) and, during a round, when new servers arrived (adds as they
	// arrive: s.Round is then the round in progress and s holds every known
	// server plus the new ones), never concurrently with itself. It returns how many writes it
	// made to the registry and the first error that prevented it from
	// converging; a failed Apply is retried with the next snapshot.
	Apply(ctx context.Context, s endpoint.Snapshot) (Result, error)
	// Close is called once at shutdown after the last Apply. A sink flushes
	// what it buffered and, where its configuration says so, withdraws what it
	// registered.
	Close(ctx context.Context) error
}

// Result reports what one Apply did.
type Result struct {
	// Diff is what the sink changed in its registry.
	Diff endpoint.Diff
	// Writes counts registry write operations (Consul API writes, file
	// renames, lines printed).
	Writes int
}

// Planner is implemented by sinks that can read their registry back and tell,
// without changing anything, what Apply would do. --dry-run uses it.
type Planner interface {
	Plan(ctx context.Context, s endpoint.Snapshot) (endpoint.Diff, error)
}

// Starter is implemented by sinks with background work (a leader lock). The
// runner calls Start once, before the first Apply; a sink that is never
// started (dry run) does no background work. ctx bounds Start itself, not
// the work it starts, which runs until Close.
type Starter interface {
	Start(ctx context.Context) error
}

// ReadyNoter is implemented by sinks with something to say on /readyz that
// leaves the bridge ready: the leader of a fleet says while the fleet's
// removal guard holds removals (the bridge working as designed).
// ReadyNotes is called on every GET of /readyz, from any goroutine: it
// must not block. It returns nothing when there is nothing to say.
type ReadyNoter interface {
	ReadyNotes() []string
}
