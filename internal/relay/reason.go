package relay

import (
	"strconv"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Reason is why a datagram the relay received got no reply. Its values are
// a small fixed set, usable as metric labels.
type Reason uint8

// The reasons, in the order the relay tests them (see the package doc).
const (
	// ReasonForeignInterface: the datagram arrived on an interface that is
	// not one of Config.Interfaces, or the kernel did not say which.
	ReasonForeignInterface Reason = iota
	// ReasonBadPayload: not the probe (discover.ProbeBadPayload).
	ReasonBadPayload
	// ReasonWrongKey: encrypted mode, a token under another key
	// (discover.ProbeWrongKey).
	ReasonWrongKey
	// ReasonTokenAge: encrypted mode, a token too old or from the future
	// (discover.ProbeTokenAge).
	ReasonTokenAge
	// ReasonSource: a source no host sends from or that reaches many
	// hosts (discover.ProbeRefusal: the network or broadcast address of
	// one of the host's networks, 0/8, multicast, 240/4, port 0...).
	ReasonSource
	// ReasonOffLink: the source is not on the receiving interface's own
	// networks: off-link, or forged.
	ReasonOffLink
	// ReasonOwnAddress: the source is one of this host's addresses.
	ReasonOwnAddress
	// ReasonNoTargets: the Targets source has no usable set, or every
	// target is on the receiving interface's networks.
	ReasonNoTargets
	// ReasonStaleTargets: the set is older than Config.MaxTargetAge.
	ReasonStaleTargets
	// ReasonQueueFull: the replies would not fit in the delayed queue.
	ReasonQueueFull
	// ReasonRate: the source is over its per-source rate.
	ReasonRate
	// ReasonGlobalRate: the replies would exceed the global budget.
	ReasonGlobalRate

	numReasons
)

// reasonNames are the metric labels; the gate's verdicts keep the gate's
// names.
var reasonNames = [numReasons]string{
	ReasonForeignInterface: "foreign_interface",
	ReasonBadPayload:       discover.ProbeBadPayload.String(),
	ReasonWrongKey:         discover.ProbeWrongKey.String(),
	ReasonTokenAge:         discover.ProbeTokenAge.String(),
	ReasonSource:           discover.ProbeSourceRefused.String(),
	ReasonOffLink:          "off_link",
	ReasonOwnAddress:       "own_address",
	ReasonNoTargets:        "no_targets",
	ReasonStaleTargets:     "stale_targets",
	ReasonQueueFull:        "queue_full",
	ReasonRate:             discover.ProbeOverRate.String(),
	ReasonGlobalRate:       discover.ProbeOverGlobalRate.String(),
}

// String returns the reason's name ("off_link"), its metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Reasons returns every Reason, in the order the relay tests them.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// reasonOf maps a gate's verdict (other than admitted) to its Reason.
func reasonOf(v discover.ProbeVerdict) Reason {
	switch v {
	case discover.ProbeWrongKey:
		return ReasonWrongKey
	case discover.ProbeTokenAge:
		return ReasonTokenAge
	case discover.ProbeSourceRefused:
		return ReasonSource
	case discover.ProbeOverRate:
		return ReasonRate
	case discover.ProbeOverGlobalRate:
		return ReasonGlobalRate
	}
	return ReasonBadPayload
}

// Drops counts datagrams by Reason.
type Drops [numReasons]uint64

// Total is the sum of the counts.
func (d Drops) Total() uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}
