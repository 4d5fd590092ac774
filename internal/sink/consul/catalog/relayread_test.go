package catalog

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// The relay's reader of the catalog (relayread.go), on the fake catalog.

// relayHang only stops a test that would otherwise hang.
const relayHang = 30 * time.Second

// testReader is a PassingReader of the default fleet of service django on
// fc.
func testReader(t *testing.T, fc *fakeCatalog, mod ...func(*Config)) *PassingReader {
	t.Helper()
	cfg := Config{SharedConfig: consulclient.SharedConfig{BridgeID: "r"}}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := newPassingReader(cfg.WithDefaults(), fc, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fleetMeta is the meta of the fleet with KV prefix fleet, on its nodes and
// services.
func fleetMeta(fleet string) map[string]string {
	return map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: fleet}
}

// putServer places the server at addr on node (its own node when node is
// ""), as a fleet's leader writes it: node and service with the fleet's
// meta, a passing observed check; nodeMeta replaces the node's meta
// (nil: the fleet's).
func putServer(fc *fakeCatalog, fleet, node, addr string, nodeMeta map[string]string) {
	ap := netip.MustParseAddrPort(addr)
	id := consulclient.ServiceID("django", ap)
	if node == "" {
		node = id
	}
	if nodeMeta == nil {
		nodeMeta = fleetMeta(fleet)
	}
	fc.PutService(node, ap.Addr().String(), api.AgentService{ID: id, Service: "django", Address: ap.Addr().String(), Port: int(ap.Port()), Meta: fleetMeta(fleet)})
	fc.PutNodeMeta(node, nodeMeta)
}

// readWaits waits until a blocking read waits on clk (its wait's timer).
func readWaits(t *testing.T, clk *clocktest.Clock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), relayHang)
	defer cancel()
	if err := clk.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// spellAddrs spells addresses as "ip:port".
func spellAddrs(as []netip.AddrPort) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}

// TestPassingReaderWrittenBySink: what the sink writes, in either layout,
// the reader reads back, minus a server whose check turned critical; a
// node of the fleet's name with no server on it counts for nothing.
func TestPassingReaderWrittenBySink(t *testing.T) {
	for _, layout := range []string{LayoutNodePerServer, LayoutSharedNode} {
		t.Run(layout, bubble(func(t *testing.T) {
			h, _ := loneBridgeIn(t, layout, nil, "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:9000")
			r := testReader(t, h.fc)
			set, idx, err := r.Read(context.Background(), 0)
			if err != nil || idx == 0 {
				t.Fatalf("Read = %v, %d, %v", set, idx, err)
			}
			if got, want := spellAddrs(set), []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:9000"}; !slices.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}
			_, _, c, ok := h.server("10.0.0.2:8000")
			if !ok {
				t.Fatal("no observed check of 10.0.0.2:8000")
			}
			c.Status = api.HealthCritical
			h.fc.PutCheck(c)
			set, _, err = r.Read(context.Background(), 0)
			if got, want := spellAddrs(set), []string{"10.0.0.1:8000", "10.0.0.3:9000"}; err != nil || !slices.Equal(got, want) {
				t.Errorf("after a critical check: read %q, %v; want %q", got, err, want)
			}
		}))
	}
}

// TestPassingReaderFleetOnly: only the fleet's own entries are read: not
// another owner's instance of the service, not another fleet's, not the
// fleet's service meta on a node without the fleet's meta or of no name
// of the fleet's; a server on the fleet's shared node is.
func TestPassingReaderFleetOnly(t *testing.T) {
	const fleetB = "udp-discovery-bridge/django-lab"
	tests := []struct {
		name string
		put  func(fc *fakeCatalog)
		want []string
	}{
		{"the fleet's own node", func(fc *fakeCatalog) { putServer(fc, testFleet, "", "10.0.0.1:8000", nil) }, []string{"10.0.0.1:8000"}},
		{"the fleet's shared node", func(fc *fakeCatalog) {
			putServer(fc, testFleet, SharedNodeName("django", testFleet), "10.0.0.1:8000", nil)
		}, []string{"10.0.0.1:8000"}},
		{"another owner's instance", func(fc *fakeCatalog) {
			fc.PutService("web-1", "10.0.9.1", api.AgentService{ID: "django-1", Service: "django", Address: "10.0.9.1", Port: 8000})
		}, []string{}},
		{"another fleet's instance", func(fc *fakeCatalog) {
			putServer(fc, fleetB, NodeName("django", fleetB, netip.MustParseAddrPort("10.0.9.2:8000")), "10.0.9.2:8000", nil)
		}, []string{}},
		{"the fleet's service on a node without its meta", func(fc *fakeCatalog) {
			putServer(fc, testFleet, "", "10.0.9.3:8000", map[string]string{"registered-by": "ops"})
		}, []string{}},
		{"the fleet's service on a node of another fleet", func(fc *fakeCatalog) {
			putServer(fc, testFleet, "", "10.0.9.4:8000", fleetMeta(fleetB))
		}, []string{}},
		{"the fleet's meta on a node of no name of the fleet's", func(fc *fakeCatalog) {
			putServer(fc, testFleet, "someone-elses-node", "10.0.9.5:8000", nil)
		}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeCatalog(t, clocktest.New(testStart))
			tt.put(fc)
			set, _, err := testReader(t, fc).Read(context.Background(), 0)
			if got := spellAddrs(set); err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("read %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPassingReaderBlocks: a read from the last index returns as soon as
// the catalog changes, without the clock moving (a server removed or gone
// critical is out of the next set at once), and after its wait when
// nothing changes; its answer then is the same set and index.
func TestPassingReaderBlocks(t *testing.T) {
	tests := []struct {
		name   string
		change func(fc *fakeCatalog)
		want   []string
	}{
		{"node deleted", func(fc *fakeCatalog) { fc.DeleteNode(sid("10.0.0.2:8000")) }, []string{"10.0.0.1:8000"}},
		{"check critical", func(fc *fakeCatalog) {
			fc.PutCheck(api.HealthCheck{Node: sid("10.0.0.2:8000"), CheckID: "service:" + sid("10.0.0.2:8000"), ServiceID: sid("10.0.0.2:8000"),
				ServiceName: "django", Status: api.HealthCritical})
		}, []string{"10.0.0.1:8000"}},
		{"a server added", func(fc *fakeCatalog) { putServer(fc, testFleet, "", "10.0.0.3:8000", nil) }, []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(testStart)
			fc := newFakeCatalog(t, clk)
			putServer(fc, testFleet, "", "10.0.0.1:8000", nil)
			putServer(fc, testFleet, "", "10.0.0.2:8000", nil)
			r := testReader(t, fc)
			_, idx, err := r.Read(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				set []netip.AddrPort
				idx uint64
				err error
			}
			got := make(chan result, 1)
			go func() {
				set, next, err := r.Read(context.Background(), idx)
				got <- result{set, next, err}
			}()
			readWaits(t, clk)
			tt.change(fc)
			ctx, cancel := context.WithTimeout(context.Background(), relayHang)
			defer cancel()
			var res result
			select {
			case res = <-got:
			case <-ctx.Done():
				t.Fatal("the blocking read did not return on the change")
			}
			if s := spellAddrs(res.set); res.err != nil || !slices.Equal(s, tt.want) || res.idx <= idx {
				t.Errorf("read %q, index %d (from %d), %v; want %q", s, res.idx, idx, res.err, tt.want)
			}
			if !clk.Now().Equal(testStart) {
				t.Errorf("the clock moved to %s", clk.Now())
			}
		})
	}
	t.Run("no change: after the wait", func(t *testing.T) {
		clk := clocktest.New(testStart)
		fc := newFakeCatalog(t, clk)
		putServer(fc, testFleet, "", "10.0.0.1:8000", nil)
		r := testReader(t, fc)
		_, idx, err := r.Read(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan []netip.AddrPort, 1)
		var next uint64
		go func() {
			set, n, _ := r.Read(context.Background(), idx)
			next = n
			done <- set
		}()
		readWaits(t, clk)
		clk.Advance(DefaultRelayWait)
		ctx, cancel := context.WithTimeout(context.Background(), relayHang)
		defer cancel()
		select {
		case set := <-done:
			if got := spellAddrs(set); !slices.Equal(got, []string{"10.0.0.1:8000"}) || next != idx {
				t.Errorf("after the wait: %q, index %d; want the same set and index %d", got, next, idx)
			}
		case <-ctx.Done():
			t.Fatal("the blocking read did not return after its wait")
		}
	})
}

// TestPassingReaderIndex: Consul's advice on indexes: 0 is never blocked
// on (1 instead), and an index lower than the one asked for means the
// state was replaced (read afresh: 0).
func TestPassingReaderIndex(t *testing.T) {
	clk := clocktest.New(testStart)
	fc := newFakeCatalog(t, clk)
	r := testReader(t, fc)
	if _, next, err := r.Read(context.Background(), 0); err != nil || next != 1 {
		t.Errorf("an empty catalog (index 0): next %d, %v; want 1", next, err)
	}
	putServer(fc, testFleet, "", "10.0.0.1:8000", nil)
	got := make(chan uint64, 1)
	go func() {
		_, next, _ := r.Read(context.Background(), 1000)
		got <- next
	}()
	readWaits(t, clk)
	clk.Advance(DefaultRelayWait)
	if next := <-got; next != 0 {
		t.Errorf("an index gone backwards: next %d, want 0", next)
	}
}

// TestPassingReaderErrors: a refused read names what was read and the ACL
// rule missing; a transport error names the service and the fleet; a
// cancelled read ends.
func TestPassingReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
		acl  bool
	}{
		{"ACL", api.StatusError{Code: 403, Body: consultest.Denied("service:read", "django")},
			[]string{"read the passing instances of service django (fleet udp-discovery-bridge/django)", `service "django" { policy = "read" }`}, true},
		{"unreachable", nil, []string{"consul read the passing instances of service django (fleet udp-discovery-bridge/django)", "connection refused"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeCatalog(t, clocktest.New(testStart))
			fc.FailNext("PassingEntries", 1, tt.err)
			_, _, err := testReader(t, fc).Read(context.Background(), 0)
			if err == nil || consulclient.IsACL(err) != tt.acl {
				t.Fatalf("Read error %v, want one (ACL %v)", err, tt.acl)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		fc := newFakeCatalog(t, clocktest.New(testStart))
		putServer(fc, testFleet, "", "10.0.0.1:8000", nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := testReader(t, fc).Read(ctx, 5); !errors.Is(err, context.Canceled) {
			t.Errorf("Read with a cancelled context: %v", err)
		}
	})
}

// TestPassingEntriesQuery: the reader's request to Consul is a passing,
// filtered, blocking read of /v1/health/service/<service>, and the index
// comes from X-Consul-Index.
func TestPassingEntriesQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/health/service/django" || !q.Has("passing") || q.Get("index") != "7" || q.Get("wait") != "10000ms" ||
			!strings.Contains(q.Get("filter"), `Service.Meta["bridge-fleet"] == "udp-discovery-bridge/django"`) {
			t.Errorf("request %s", r.URL)
		}
		w.Header().Set("X-Consul-Index", "9")
		_, _ = w.Write([]byte(`[{"Node":{"Node":"django-10.0.0.1-8000","Address":"10.0.0.1","Meta":{"managed-by":"udp-discovery-bridge","bridge-fleet":"udp-discovery-bridge/django"}},` +
			`"Service":{"ID":"django-10.0.0.1-8000","Service":"django","Port":8000},"Checks":[]}]`))
	}))
	defer srv.Close()
	client, err := consulclient.ClientConfig{Addr: srv.URL}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{SharedConfig: consulclient.SharedConfig{BridgeID: "r"}}.WithDefaults()
	r, err := newPassingReader(cfg, apiCatalog{c: client.API}, client.Redact, 0)
	if err != nil {
		t.Fatal(err)
	}
	set, next, err := r.Read(context.Background(), 7)
	if got := spellAddrs(set); err != nil || next != 9 || !slices.Equal(got, []string{"10.0.0.1:8000"}) {
		t.Errorf("Read = %q, %d, %v; want the node's address (the service has none), index 9", got, next, err)
	}
}

// TestNewPassingReader: the reader takes the sink's settings, validated as
// the sink validates them, and makes no call.
func TestNewPassingReader(t *testing.T) {
	cfg := Config{SharedConfig: consulclient.SharedConfig{BridgeID: "r", Client: consulclient.ClientConfig{Addr: "127.0.0.1:1"}}}
	r, err := NewPassingReader(cfg, 3*time.Second)
	if err != nil || r.Wait() != 3*time.Second || r.fleet != testFleet {
		t.Errorf("NewPassingReader = %+v, %v", r, err)
	}
	cfg.Catalog.KVPrefix = "/bad/"
	if _, err := NewPassingReader(cfg, 0); err == nil || !strings.Contains(err.Error(), "consul_kv_prefix") {
		t.Errorf("a bad prefix: %v, want an error naming consul_kv_prefix", err)
	}
}
