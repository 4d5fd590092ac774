// Package explain answers "why is this server, or is it not, ready?" for
// `bridge explain`. A running bridge builds a Report from what it holds (the
// planner's state, the app check's history, what each sink did with the
// server and, in a fleet, which bridges observe it) and serves it on its
// debug endpoint (Handler, off by default); the CLI fetches it (Fetch) and
// prints it (Text) or passes its JSON on.
package explain

import (
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// Report is the answer for one query: every server the bridge holds at the
// queried address (any port unless the query names one).
type Report struct {
	// Query is the address asked about ("10.0.0.5" or "10.0.0.5:8000").
	Query string `json:"query"`
	// Bridge and Segment name the bridge that answered.
	Bridge  string `json:"bridge"`
	Segment string `json:"segment,omitempty"`
	// Round is the bridge's last round number and At when the report was
	// made.
	Round uint64    `json:"round"`
	At    time.Time `json:"at"`
	// Servers are the held servers at the address, sorted by address.
	Servers []Server `json:"servers"`
	// Note says why Servers is empty: never seen, refused, removed.
	Note string `json:"note,omitempty"`
	// FleetGuard is what this bridge knows of the fleet's removal guard at
	// the address, when a sink keeps a fleet and it matters: the fleet's
	// guard holds a server there (leader), or this bridge holds none there
	// or does not observe one (a server no bridge observes may be held).
	FleetGuard *FleetGuard `json:"fleet_guard,omitempty"`
}

// Server is one held server.
type Server struct {
	Address string `json:"address"`
	// State is the server's place in the state model: pending, ready,
	// failing or unobserved (missed at least one complete round).
	State string `json:"state"`
	// Ready is what the sinks export as ready.
	Ready     bool           `json:"ready"`
	Discovery Discovery      `json:"discovery"`
	Removal   Removal        `json:"removal"`
	Check     *Check         `json:"check,omitempty"`
	Sinks     []Sink         `json:"sinks"`
	Observers []Observer     `json:"observers,omitempty"`
	FleetErr  string         `json:"fleet_error,omitempty"`
	Addr      netip.AddrPort `json:"-"`
}

// Discovery is how the bridge sees the server.
type Discovery struct {
	Source    string    `json:"source"`
	Interface string    `json:"interface,omitempty"`
	Network   string    `json:"network,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// LastReplyAge is the age of its last reply when the report was made,
	// in seconds.
	LastReplyAge float64 `json:"last_reply_age_seconds"`
	// Misses counts the complete rounds in a row that did not see it;
	// Established is set once it was seen missed_rounds rounds in a row
	// (only then does it count for the removal guard).
	Misses      int  `json:"misses"`
	Established bool `json:"established"`
}

// Removal is the rule that removes the server next.
type Removal struct {
	Rule string `json:"rule"`
	// RoundsLeft is how many more complete rounds without a reply remove
	// it.
	RoundsLeft int `json:"rounds_left"`
	// HeldByGuard: its removal is due and the removal guard holds it,
	// in the episode that began in round GuardSince.
	HeldByGuard bool   `json:"held_by_guard"`
	GuardSince  uint64 `json:"guard_since_round,omitempty"`
}

// Check is the app check's account of the server.
type Check struct {
	Kind   string    `json:"kind"`
	State  string    `json:"state"`
	Since  time.Time `json:"since,omitzero"`
	Output string    `json:"output,omitempty"`
	// Passes and Fails are the results in a row counting toward rise and
	// fall; Rise and Fall the thresholds.
	Passes int `json:"passes"`
	Fails  int `json:"fails"`
	Rise   int `json:"rise"`
	Fall   int `json:"fall"`
	// Checking: a check is in flight now.
	Checking bool `json:"checking"`
	// History holds the latest results, newest last.
	History []Result `json:"history"`
}

// Result is one check's result.
type Result struct {
	At        time.Time `json:"at"`
	OK        bool      `json:"ok"`
	Status    int       `json:"status,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Reason    string    `json:"reason,omitempty"`
}

// Sink is one sink's account of the server.
type Sink struct {
	Sink   string `json:"sink"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Observer is one bridge of the fleet that observes the server.
type Observer = sink.Observer

// FleetGuard is what a bridge knows of the fleet's removal guard at an
// address.
type FleetGuard = sink.FleetGuard

// FleetHold is one server the fleet's removal guard holds.
type FleetHold = sink.FleetHold
