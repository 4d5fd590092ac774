package history

import "time"

// Event is one timestamped entry of a history. Exactly one of its payloads
// is set; its JSON form is one line, {"t": <RFC 3339 time>, "<kind>":
// {...}}.
type Event struct {
	At       time.Time       `json:"t"`
	Config   *Config         `json:"config,omitempty"`
	Answers  *Answers        `json:"answers,omitempty"`
	Bridge   *BridgeChange   `json:"bridge,omitempty"`
	Registry *RegistryChange `json:"registry,omitempty"`
	Fault    *Fault          `json:"fault,omitempty"`
	Read     *SinkRead       `json:"read,omitempty"`
	Term     *Term           `json:"term,omitempty"`
	Write    *LeaderWrite    `json:"write,omitempty"`
}

// Kind names an event's payload.
type Kind string

// The kinds of events, each the JSON key of its payload.
const (
	KindConfig   Kind = "config"
	KindAnswers  Kind = "answers"
	KindBridge   Kind = "bridge"
	KindRegistry Kind = "registry"
	KindFault    Kind = "fault"
	KindRead     Kind = "read"
	KindTerm     Kind = "term"
	KindWrite    Kind = "write"
)

// Kind is the kind of e's payload: "" when none is set, the first set one
// when more are (Validate refuses both).
func (e Event) Kind() Kind {
	k, _ := e.kinds()
	return k
}

// kinds returns the first payload kind set and how many are set.
func (e Event) kinds() (Kind, int) {
	var first Kind
	n := 0
	for _, p := range []struct {
		k   Kind
		set bool
	}{
		{KindConfig, e.Config != nil}, {KindAnswers, e.Answers != nil}, {KindBridge, e.Bridge != nil},
		{KindRegistry, e.Registry != nil}, {KindFault, e.Fault != nil}, {KindRead, e.Read != nil},
		{KindTerm, e.Term != nil}, {KindWrite, e.Write != nil},
	} {
		if p.set {
			if n == 0 {
				first = p.k
			}
			n++
		}
	}
	return first, n
}

// Config is a run's parameters: the first event of every history, and only
// there.
type Config struct {
	// Seed is the runner's random seed, to replay the run.
	Seed int64 `json:"seed"`
	// Round is one discovery round, interval + timeout.
	Round Duration `json:"round"`
	// MissedRounds is missed_rounds: a bridge drops a server after that
	// many rounds without a reply.
	MissedRounds int `json:"missed_rounds"`
	// RemovalGuardRounds, MaxRemovalFraction and RemovalGuardHeld are the
	// removal guard's keys; held is "ready" (the default when empty: fail
	// open) or "unobserved".
	RemovalGuardRounds int     `json:"removal_guard_rounds"`
	MaxRemovalFraction float64 `json:"max_removal_fraction"`
	RemovalGuardHeld   string  `json:"removal_guard_held,omitempty"`
	// DeregisterAfter is how long an unobserved server stays before the
	// leader removes it (at least a round).
	DeregisterAfter Duration `json:"deregister_after"`
	// WindowRounds is the fleet guard's window in rounds (3): servers going
	// unobserved within it are one silence.
	WindowRounds int `json:"window_rounds"`
	// SessionTTL is a bridge's liveness TTL (consul_lock_session_ttl): the
	// observation of a bridge that stopped without cleaning up (killed,
	// paused, cut from the registry) may stand twice that long, as Consul
	// invalidates an expired session within twice its TTL.
	SessionTTL Duration `json:"session_ttl"`
	// Slack is the propagation allowance of every bound (at least a round:
	// a server's last reply may come up to a round before it goes silent).
	Slack Duration `json:"slack"`
	// Quiet is quiet-no-writes' threshold; 0 means deregister_after + 2 ×
	// slack.
	Quiet Duration `json:"quiet,omitempty"`
	// Segments are the LAN segments: each bridge and each server is on
	// exactly one.
	Segments []Segment `json:"segments"`
}

// Segment is one LAN segment, the bridges that probe it and the servers on
// it. A server is named as the sinks list it (e.g. "10.213.1.11:8080").
type Segment struct {
	Name    string   `json:"name"`
	Bridges []string `json:"bridges"`
	Servers []string `json:"servers"`
}

// Held ready (fail open, the default) and unobserved: RemovalGuardHeld.
const (
	HeldReady      = "ready"
	HeldUnobserved = "unobserved"
)

// Answers says server Server starts (Answering) or stops answering probes:
// its responder started or was killed, or its segment's traffic to it is
// dropped or restored. Every server starts not answering.
type Answers struct {
	Server    string `json:"server"`
	Answering bool   `json:"answering"`
}

// BridgeState is a bridge condition a BridgeChange sets.
type BridgeState string

// A bridge is up or down (its process); while up it may also be paused
// (SIGSTOP), cut from its segment and cut from the registry, each until a
// change with Back. Every bridge starts down. Down ends a pause (the
// process is gone) but not the cuts (they are the network's).
const (
	BridgeUp          BridgeState = "up"
	BridgeDown        BridgeState = "down"
	BridgePaused      BridgeState = "paused"
	BridgeCutSegment  BridgeState = "cut-segment"
	BridgeCutRegistry BridgeState = "cut-registry"
)

// BridgeChange is a change of bridge Bridge's state: State begins, or ends
// with Back (paused, cut-segment, cut-registry only).
type BridgeChange struct {
	Bridge string      `json:"bridge"`
	State  BridgeState `json:"state"`
	Back   bool        `json:"back,omitempty"`
}

// RegistryState is the registry's availability.
type RegistryState string

// The registry is up (the initial state), down (an outage: no read, no
// write), limited (it refuses writes) or wiped: it lost its data and is up
// again, empty, at that instant.
const (
	RegistryUp      RegistryState = "up"
	RegistryDown    RegistryState = "down"
	RegistryWiped   RegistryState = "wiped"
	RegistryLimited RegistryState = "limited"
)

// RegistryChange is a change of the registry's availability.
type RegistryChange struct {
	State RegistryState `json:"state"`
}

// Fault is the start, or with End the end, of fault ID of kind Kind (the
// runner's name, e.g. "bridge-kill"; Target says what it hit, for people).
// The checker uses faults to attribute disruption and to find the quiet and
// stable stretches; their effects come as answers, bridge and registry
// events.
type Fault struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	End    bool   `json:"end,omitempty"`
}

// Health is a server's state in a sink.
type Health string

// The states a read lists.
const (
	Passing  Health = "passing"
	Critical Health = "critical"
)

// SinkRead is one poll of sink Sink. A failed poll has Err set and nothing
// else. Servers are the fleet's entries it listed with their state, Index
// the registry's index for the service (X-Consul-Index; 0: unknown) and
// Foreign the modify index of each foreign entry (another fleet's, which
// the runner wrote once); nil Foreign means they were not read.
type SinkRead struct {
	Sink    string            `json:"sink"`
	Err     string            `json:"err,omitempty"`
	Servers map[string]Health `json:"servers,omitempty"`
	Index   uint64            `json:"index,omitempty"`
	Foreign map[string]uint64 `json:"foreign,omitzero"`
}

// Term is the start, or with End the end, of a term of leadership of bridge
// Bridge (from its log or its leader metric). A bridge going down ends its
// term.
type Term struct {
	Bridge string `json:"bridge"`
	End    bool   `json:"end,omitempty"`
}

// LeaderWrite says leader Bridge wrote Ops operations to the registry (its
// "catalog reconciled" log line).
type LeaderWrite struct {
	Bridge string `json:"bridge"`
	Ops    int    `json:"ops"`
}

// Duration is a time.Duration spelled as Go does ("1.5s") in JSON.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText spells d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses b with time.ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
