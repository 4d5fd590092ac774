package agent

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

func TestNewConsulRejectsBadConfig(t *testing.T) {
	_, err := New(Config{SharedConfig: consulclient.SharedConfig{BridgeID: "h", DeregisterAfter: 10 * time.Second}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "consul_deregister_after") {
		t.Fatalf("New = %v, want error naming consul_deregister_after", err)
	}
}

func TestConsulCheckMissing(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"404", api.StatusError{Code: 404, Body: `Unknown check ID "x"`}, true},
		{"no ttl", errors.New(`Unexpected response code: 500 (CheckID "x" does not have associated TTL)`), true},
		{"unknown check", errors.New(`Unexpected response code: 404 (Unknown check ID "x")`), true},
		{"does not exist", errors.New(`CheckID "x" does not exist`), true},
		{"acl", api.StatusError{Code: 403, Body: "ACL not found"}, false},
		{"unreachable", errors.New("dial tcp 127.0.0.1:8500: connect: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkMissing(tt.err); got != tt.want {
				t.Errorf("checkMissing(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestConsulReconcile(t *testing.T) {
	rec := func(port int, iface string) consulclient.Service {
		return consulclient.Service{Name: "django", Address: "10.0.0.1", Port: port, Tags: []string{"a"},
			Meta: map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, consulclient.MetaInterface: iface}}
	}
	desired := map[string]desiredEntry{
		"same":    {svc: rec(1, "eth0")},
		"changed": {svc: rec(2, "eth1")},
		"new":     {svc: rec(3, "eth0")},
	}
	known := map[string]consulclient.Service{
		"same":    rec(1, "eth0"),
		"changed": rec(2, "eth0"),
		"gone":    rec(4, "eth0"),
	}
	toReg, toDereg, unchanged := reconcile(desired, known)
	if strings.Join(toReg, ",") != "changed,new" || strings.Join(toDereg, ",") != "gone" || unchanged != 1 {
		t.Errorf("reconcile = %v, %v, %d; want [changed new], [gone], 1", toReg, toDereg, unchanged)
	}
	// A quiet round: nothing to write.
	toReg, toDereg, unchanged = reconcile(map[string]desiredEntry{"same": {svc: rec(1, "eth0")}}, map[string]consulclient.Service{"same": rec(1, "eth0")})
	if len(toReg)+len(toDereg) != 0 || unchanged != 1 {
		t.Errorf("quiet reconcile = %v, %v, %d", toReg, toDereg, unchanged)
	}
	// Not leader: everything known goes.
	_, toDereg, _ = reconcile(nil, known)
	if len(toDereg) != 3 {
		t.Errorf("reconcile(nil) deregisters %v, want all 3", toDereg)
	}
}

func TestConsulDesiredMeta(t *testing.T) {
	c, err := New(Config{SharedConfig: consulclient.SharedConfig{BridgeID: "host-1", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1"}, Tags: []string{"lab"}, Check: "tcp", AppCheck: true}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s := endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{{
		Addr: netip.MustParseAddrPort("10.213.1.5:8000"), Source: netip.MustParseAddrPort("10.213.1.5:9999"), Interface: "veth0",
	}, {
		Addr: netip.MustParseAddrPort("10.213.1.6:8000"), // no source, no interface
	}}}
	d := c.shape.desired(s)
	e, ok := d["django-10.213.1.5-8000"]
	if !ok {
		t.Fatalf("desired = %v, want django-10.213.1.5-8000", d)
	}
	want := map[string]string{
		"managed-by": "udp-discovery-bridge", "bridge-id": "host-1", "interface": "veth0",
		"source-address": "10.213.1.5:9999", "bridge-checks": "alias/1m0s+app",
	}
	for k, v := range want {
		if e.svc.Meta[k] != v {
			t.Errorf("meta[%s] = %q, want %q", k, e.svc.Meta[k], v)
		}
	}
	if e.svc.Address != "10.213.1.5" || e.svc.Port != 8000 || e.svc.Name != "django" || len(e.svc.Tags) != 1 {
		t.Errorf("service = %+v", e.svc)
	}
	e2 := d["django-10.213.1.6-8000"]
	if _, ok := e2.svc.Meta["interface"]; ok {
		t.Errorf("empty interface must be omitted from meta: %v", e2.svc.Meta)
	}
	if got := e.svc.Endpoint(); got.Addr != s.Endpoints[0].Addr || got.Source != s.Endpoints[0].Source || got.Interface != "veth0" {
		t.Errorf("service.endpoint() = %+v", got)
	}
}

// TestConsulApplyUnreachable checks that an unreachable agent fails fast with
// an error that names the operation and never the token.
func TestConsulApplyUnreachable(t *testing.T) {
	c, err := New(Config{SharedConfig: consulclient.SharedConfig{BridgeID: "host-1", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1", Token: "s3cr3t-token"}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Apply(ctx, endpoint.Snapshot{Round: 1})
	if err == nil {
		t.Fatal("Apply against a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "register bridge service") {
		t.Errorf("error %q does not name the operation", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the token: %v", err)
	}
}
