package source_test

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

var _ runner.Inventory = (*source.Local)(nil)

// eps are endpoints at "ip:port", each with its health ("ready",
// "pending", "failing").
func eps(kv ...string) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for i := 0; i+1 < len(kv); i += 2 {
		h, ok := endpoint.ParseHealth(kv[i+1])
		if !ok {
			panic(kv[i+1])
		}
		out = append(out, endpoint.Endpoint{Addr: netip.MustParseAddrPort(kv[i]), Check: endpoint.Check{State: h}})
	}
	return out
}

// TestLocal: the local source relays the ready servers of every snapshot,
// completed round or not; a failed round keeps the set, which ages.
func TestLocal(t *testing.T) {
	tests := []struct {
		name string
		tell func(l *source.Local, clk *clocktest.Clock)
		want []string
		age  time.Duration
		err  string
	}{
		{"a round: its ready servers", func(l *source.Local, _ *clocktest.Clock) {
			l.Round(endpoint.Snapshot{Round: 1, Endpoints: eps("10.1.0.9:8000", "ready", "10.1.0.10:8000", "pending", "10.1.0.11:8000", "failing", "10.1.0.12:9000", "ready")})
		}, []string{"10.1.0.9:8000", "10.1.0.12:9000"}, 0, ""},
		{"an arrival between rounds changes the set at once", func(l *source.Local, clk *clocktest.Clock) {
			l.Round(endpoint.Snapshot{Round: 1, Endpoints: eps("10.1.0.9:8000", "ready")})
			clk.Advance(2 * time.Second)
			l.Arrived(endpoint.Snapshot{Round: 2, Endpoints: eps("10.1.0.9:8000", "ready", "10.1.0.13:8000", "ready")})
		}, []string{"10.1.0.9:8000", "10.1.0.13:8000"}, 0, ""},
		{"a failed round keeps the set", func(l *source.Local, clk *clocktest.Clock) {
			l.Round(endpoint.Snapshot{Round: 1, Endpoints: eps("10.1.0.9:8000", "ready")})
			clk.Advance(10 * time.Second)
			l.Failed(errors.New("no interface"))
		}, []string{"10.1.0.9:8000"}, 10 * time.Second, "discovery round: no interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			k := newKeeper(clk, &bytes.Buffer{})
			l := source.NewLocal(k)
			tt.tell(l, clk)
			set, age, ok := k.Targets()
			if !ok || !slices.Equal(spell(set), tt.want) || age != tt.age {
				t.Errorf("Targets = %q, %s, %v; want %q, %s", spell(set), age, ok, tt.want, tt.age)
			}
			err := ""
			if e := k.State().LastError; e != nil {
				err = e.Error()
			}
			if err != tt.err {
				t.Errorf("LastError = %q, want %q", err, tt.err)
			}
		})
	}
}
