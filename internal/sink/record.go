package sink

import (
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// Record is the JSON form of an endpoint shared by the stdout and file sinks.
type Record struct {
	Event         string     `json:"event,omitempty"`
	IP            string     `json:"ip"`
	Port          uint16     `json:"port"`
	SourceAddress string     `json:"source_address"`
	Interface     string     `json:"interface"`
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      *time.Time `json:"last_seen,omitempty"`
	// Health, Check and HealthSince are the app check's verdict
	// (endpoint.Check): the state ("ready", "pending", "failing"), the
	// output of the check that made the transition ("HTTP GET /healthz:
	// 503 in 4 ms") and when the state began. They are left out when no
	// app check runs, so the records are then what they were before app
	// checks existed.
	Health      string     `json:"health,omitempty"`
	Check       string     `json:"check,omitempty"`
	HealthSince *time.Time `json:"health_since,omitempty"`
}

// NewRecord converts e; lastSeen is included only when withLastSeen is set,
// the health fields only when an app check judged e (checked).
func NewRecord(e endpoint.Endpoint, withLastSeen bool) Record {
	r := Record{
		IP:        e.Addr.Addr().String(),
		Port:      e.Addr.Port(),
		Interface: e.Interface,
		FirstSeen: e.FirstSeen.UTC(),
	}
	if e.Source.IsValid() {
		r.SourceAddress = e.Source.String()
	}
	if withLastSeen {
		ls := e.LastSeen.UTC()
		r.LastSeen = &ls
	}
	if checked(e.Check) {
		r.Health, r.Check = e.Check.State.String(), e.Check.Output
		if !e.Check.Since.IsZero() {
			since := e.Check.Since.UTC()
			r.HealthSince = &since
		}
	}
	return r
}

// checked reports whether an app check gave c: with none running every
// endpoint's Check is the zero value (ready, no output, no time).
func checked(c endpoint.Check) bool {
	return c.State != endpoint.Ready || c.Output != "" || !c.Since.IsZero()
}

// Endpoint converts r back; ok is false when IP or port are not valid.
func (r Record) Endpoint() (endpoint.Endpoint, bool) {
	ip, err := netip.ParseAddr(r.IP)
	if err != nil || r.Port == 0 {
		return endpoint.Endpoint{}, false
	}
	e := endpoint.Endpoint{Addr: netip.AddrPortFrom(ip, r.Port), Interface: r.Interface, FirstSeen: r.FirstSeen}
	if src, err := netip.ParseAddrPort(r.SourceAddress); err == nil {
		e.Source = src
	}
	if r.LastSeen != nil {
		e.LastSeen = *r.LastSeen
	}
	if h, ok := endpoint.ParseHealth(r.Health); ok {
		e.Check = endpoint.Check{State: h, Output: r.Check}
		if r.HealthSince != nil {
			e.Check.Since = *r.HealthSince
		}
	}
	return e, true
}
