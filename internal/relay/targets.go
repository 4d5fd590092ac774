package relay

import (
	"net/netip"
	"strconv"
	"time"
)

// Target is one server the relay answers with: an IPv4 address and an
// optional port.
type Target struct {
	Addr netip.Addr
	// Port is appended to the reply as ":port" when not 0. A stock server
	// appends none, and a client then assumes its default port (8000).
	Port uint16
}

// String returns "ip" or "ip:port", the text after the reply's prefix.
func (t Target) String() string {
	if t.Port == 0 {
		return t.Addr.String()
	}
	return t.Addr.String() + ":" + strconv.Itoa(int(t.Port))
}

// Targets is where the relay's set of servers comes from (a registry
// reader, the bridge's own state). The relay calls Targets once for each
// probe that passes the checks before it, from the goroutine reading
// probes, and for Stats: it must return at once, a snapshot read, never a
// registry call. The relay never modifies set; the source must not modify
// a set it has returned either (replace it instead).
type Targets interface {
	// Targets returns the current set, how long ago the source last read
	// it successfully, and whether it may be used at all (false: nothing
	// is relayed).
	Targets() (set []Target, age time.Duration, ok bool)
}

// TargetsFunc adapts a function to Targets.
type TargetsFunc func() ([]Target, time.Duration, bool)

// Targets calls f.
func (f TargetsFunc) Targets() ([]Target, time.Duration, bool) { return f() }
