package runner_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
)

// recInventory records what it is told, as "name:call:round".
type recInventory struct {
	name string
	log  *[]string
}

func (r recInventory) Round(s endpoint.Snapshot) {
	*r.log = append(*r.log, fmt.Sprintf("%s:round:%d", r.name, s.Round))
}

func (r recInventory) Arrived(s endpoint.Snapshot) {
	*r.log = append(*r.log, fmt.Sprintf("%s:arrived:%d", r.name, s.Round))
}
func (r recInventory) Failed(err error) { *r.log = append(*r.log, r.name+":failed:"+err.Error()) }

// TestInventories: every inventory is told everything, in order; nil ones
// are left out, and none at all is a nil Inventory.
func TestInventories(t *testing.T) {
	var log []string
	a, b := recInventory{"a", &log}, recInventory{"b", &log}
	tests := []struct {
		name string
		in   []runner.Inventory
		want []string
	}{
		{"none", nil, nil},
		{"only nils", []runner.Inventory{nil, nil}, nil},
		{"one", []runner.Inventory{nil, a}, []string{"a:round:1", "a:arrived:2", "a:failed:boom"}},
		{"two", []runner.Inventory{a, nil, b}, []string{"a:round:1", "b:round:1", "a:arrived:2", "b:arrived:2", "a:failed:boom", "b:failed:boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log = nil
			inv := runner.Inventories(tt.in...)
			if tt.want == nil {
				if inv != nil {
					t.Fatalf("Inventories = %v, want nil", inv)
				}
				return
			}
			inv.Round(endpoint.Snapshot{Round: 1})
			inv.Arrived(endpoint.Snapshot{Round: 2})
			inv.Failed(errors.New("boom"))
			if !slices.Equal(log, tt.want) {
				t.Errorf("told %q, want %q", log, tt.want)
			}
		})
	}
}
