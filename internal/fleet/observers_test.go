package fleet

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet/observation"
)

func TestObserversOf(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.1.0.5:8000"), netip.MustParseAddrPort("10.1.0.6:8000")
	obs := Observations{ByBridge: map[string]observation.Observation{
		"b2": {Bridge: "b2", Entries: []observation.Entry{{Addr: a, Segment: "lab", Health: endpoint.Failing, Output: "HTTP GET /: 503 in 1 ms"}, {Addr: b, Segment: "lab"}}},
		"b1": {Bridge: "b1", Entries: []observation.Entry{{Addr: a, Segment: "lab"}}},
		"b3": {Bridge: "b3", Entries: []observation.Entry{{Addr: b, Segment: "other"}}},
	}}
	got := ObserversOf(obs, netip.MustParseAddrPort("[::ffff:10.1.0.5]:8000"))
	want := []Observer{{Bridge: "b1", Segment: "lab"}, {Bridge: "b2", Segment: "lab", Health: endpoint.Failing, Output: "HTTP GET /: 503 in 1 ms"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ObserversOf = %+v, want %+v", got, want)
	}
	if got := ObserversOf(obs, netip.MustParseAddrPort("10.9.9.9:1")); len(got) != 0 {
		t.Fatalf("unknown server: %+v", got)
	}
}
