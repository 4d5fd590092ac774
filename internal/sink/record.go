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
}

// NewRecord converts e; lastSeen is included only when withLastSeen is set.
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
	return r
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
	return e, true
}
