package agent

import (
	"strings"
	"testing"
)

func TestConsulBridgeServiceID(t *testing.T) {
	if got, want := BridgeServiceID("host-1.lab"), "udp-discovery-bridge-host-1.lab"; got != want {
		t.Errorf("BridgeServiceID = %q, want %q", got, want)
	}
	if got, want := BridgeServiceID("a b/c"), "udp-discovery-bridge-a-b-c"; got != want {
		t.Errorf("BridgeServiceID = %q, want %q", got, want)
	}
}

func TestConsulOwnedFilter(t *testing.T) {
	got, err := ownedFilter("host-1")
	if err != nil {
		t.Fatal(err)
	}
	want := `Meta["managed-by"] == "udp-discovery-bridge" and Meta["bridge-id"] == "host-1"`
	if got != want {
		t.Errorf("ownedFilter = %s\nwant          %s", got, want)
	}
	got, err = ownedFilter(`we"ird`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, "== `we\"ird`") {
		t.Errorf("ownedFilter with quote = %s", got)
	}
}
