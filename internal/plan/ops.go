package plan

import (
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// This file is a plan spelled as operations: the lines of --dry-run.

// Op values.
const (
	OpAdd    = "add"
	OpRemove = "remove"
	OpNoop   = "noop"
)

// Op is one line of --dry-run output.
type Op struct {
	Op            string `json:"op"` // OpAdd, OpRemove or OpNoop
	IP            string `json:"ip"`
	Port          uint16 `json:"port"`
	SourceAddress string `json:"source_address"`
	Interface     string `json:"interface"`
	Round         uint64 `json:"round"`
	Sink          string `json:"sink,omitempty"`
	// Held marks a noop that is a removal held by the removal guard.
	Held bool `json:"held,omitempty"`
}

// NewOp describes e as an operation op in round.
func NewOp(op string, e endpoint.Endpoint, round uint64) Op {
	o := Op{Op: op, Port: e.Addr.Port(), Interface: e.Interface, Round: round}
	if e.Addr.IsValid() {
		o.IP = e.Addr.Addr().String()
	}
	if e.Source.IsValid() {
		o.SourceAddress = e.Source.String()
	}
	return o
}

// Ops lists the plan as operations: adds, then removes, then one noop per
// unchanged endpoint; the noop of a removal held by the guard says held.
// A failed round proposes nothing and returns nil.
func (p Plan) Ops() []Op {
	if p.Failed {
		return nil
	}
	ops := make([]Op, 0, len(p.Added)+len(p.Removed)+len(p.Kept))
	for _, e := range p.Added {
		ops = append(ops, NewOp(OpAdd, e, p.Round))
	}
	for _, e := range p.Removed {
		ops = append(ops, NewOp(OpRemove, e, p.Round))
	}
	held := p.HeldSet()
	for _, e := range p.Kept {
		op := NewOp(OpNoop, e, p.Round)
		op.Held = held[e.Addr]
		ops = append(ops, op)
	}
	return ops
}

// HeldSet returns the addresses of Guard.Held as a set (nil when none).
func (p Plan) HeldSet() map[netip.AddrPort]bool {
	if len(p.Guard.Held) == 0 {
		return nil
	}
	m := make(map[netip.AddrPort]bool, len(p.Guard.Held))
	for _, e := range p.Guard.Held {
		m[e.Addr] = true
	}
	return m
}
