package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// The relay's reader of the slices (relayread.go), on the fake API server,
// reading what the leader writes.

// readReady reads the ready endpoints with a reader of cfg on f, spelled
// "ip:port" and sorted.
func readReady(t *testing.T, f *fakeAPI, cfg Config) []string {
	t.Helper()
	set, next, err := newReadyReader(cfg, f.client(t)).Read(context.Background(), 7)
	if err != nil || next != 0 {
		t.Fatalf("Read = %v, %d, %v", set, next, err)
	}
	out := make([]string, len(set))
	for i, a := range set {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}

// TestReadyReader: the ready endpoints of the fleet's slices, with their
// slice's port: not those pending or failing their app check, not those
// the fleet no longer observes (terminating), not another controller's
// slices of the Service nor another Service's; a change is read by the
// next poll.
func TestReadyReader(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	cfg := testConfig("a")
	_, io := leading(t, f, clk, cfg)
	ready, pending, failing, gone := netip.MustParseAddrPort("10.213.0.1:8000"), netip.MustParseAddrPort("10.213.0.2:8000"),
		netip.MustParseAddrPort("10.213.0.3:8000"), netip.MustParseAddrPort("10.213.0.4:8000")
	other := netip.MustParseAddrPort("10.213.0.9:9000") // a slice set of its own
	want := map[netip.AddrPort]fleet.Observed{ready: {Bridges: 1}, pending: {Bridges: 1, Health: endpoint.Pending},
		failing: {Bridges: 1, Health: endpoint.Failing}, gone: {Bridges: 1}, other: {Bridges: 2}}
	round(t, io, want, clk.Now())
	delete(want, gone) // unobserved: ready false, terminating
	round(t, io, want, clk.Now())

	o := f.client(t).Objects("default")
	t1 := true
	foreign := func(name string, labels map[string]string, addr string) {
		es := kubeapi.EndpointSlice{APIVersion: kubeapi.EndpointSlices.APIVersion(), Kind: kubeapi.EndpointSlices.Kind(), AddressType: "IPv4",
			Metadata:  kubeapi.Meta{Name: name, Labels: labels},
			Ports:     []kubeapi.SlicePort{{Name: "http", Port: 8000, Protocol: "TCP"}},
			Endpoints: []kubeapi.Endpoint{{Addresses: []string{addr}, Conditions: kubeapi.Conditions{Ready: &t1}}}}
		if err := o.Create(context.Background(), kubeapi.EndpointSlices, &es, nil); err != nil {
			t.Fatal(err)
		}
	}
	foreign("django-by-hand", map[string]string{LabelService: "django", LabelManagedBy: "endpointslice-controller.k8s.io"}, "10.99.0.1")
	foreign("django-other-fleet", map[string]string{LabelService: "django", LabelManagedBy: ManagedBy, LabelFleet: "api"}, "10.99.0.2")
	foreign("api-8000-0", map[string]string{LabelService: "api", LabelManagedBy: ManagedBy, LabelFleet: "api"}, "10.99.0.3")

	if got, w := readReady(t, f, cfg), []string{"10.213.0.1:8000", "10.213.0.9:9000"}; !slices.Equal(got, w) {
		t.Errorf("read %q, want %q", got, w)
	}

	want[ready] = fleet.Observed{Bridges: 1, Health: endpoint.Failing}
	want[pending] = fleet.Observed{Bridges: 1}
	round(t, io, want, clk.Now())
	if got, w := readReady(t, f, cfg), []string{"10.213.0.2:8000", "10.213.0.9:9000"}; !slices.Equal(got, w) {
		t.Errorf("after a change: read %q, want %q", got, w)
	}
	if q := f.lastReq.URL.Query(); q.Get("resourceVersion") != "0" {
		t.Errorf("the list %s is not served from the watch cache", f.lastReq.URL)
	}
}

// TestReadyReaderEndpoints: how one slice reads: an absent ready is
// ready, an address that does not parse and a slice that is not IPv4 are
// left out, a slice without a port gives none.
func TestReadyReaderEndpoints(t *testing.T) {
	tr, fa := true, false
	tests := []struct {
		name string
		es   kubeapi.EndpointSlice
		want []string
	}{
		{"ready absent, true, false", kubeapi.EndpointSlice{AddressType: "IPv4", Ports: []kubeapi.SlicePort{{Port: 8000}},
			Endpoints: []kubeapi.Endpoint{{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2", "10.0.0.3"}, Conditions: kubeapi.Conditions{Ready: &tr}},
				{Addresses: []string{"10.0.0.4"}, Conditions: kubeapi.Conditions{Ready: &fa}}}},
			[]string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}},
		{"no port", kubeapi.EndpointSlice{AddressType: "IPv4", Endpoints: []kubeapi.Endpoint{{Addresses: []string{"10.0.0.1"}}}}, []string{"10.0.0.1:0"}},
		{"a bad address", kubeapi.EndpointSlice{AddressType: "IPv4", Ports: []kubeapi.SlicePort{{Port: 8000}},
			Endpoints: []kubeapi.Endpoint{{Addresses: []string{"nope", "10.0.0.1"}}}}, []string{"10.0.0.1:8000"}},
		{"IPv6", kubeapi.EndpointSlice{AddressType: "IPv6", Ports: []kubeapi.SlicePort{{Port: 8000}},
			Endpoints: []kubeapi.Endpoint{{Addresses: []string{"2001:db8::1"}}}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			es := tt.es
			es.APIVersion, es.Kind = kubeapi.EndpointSlices.APIVersion(), kubeapi.EndpointSlices.Kind()
			es.Metadata = kubeapi.Meta{Name: "django-8000-0", Labels: map[string]string{LabelService: "django", LabelManagedBy: ManagedBy, LabelFleet: "django"}}
			if err := f.client(t).Objects("default").Create(context.Background(), kubeapi.EndpointSlices, &es, nil); err != nil {
				t.Fatal(err)
			}
			if got := readReady(t, f, testConfig("a")); !slices.Equal(got, tt.want) {
				t.Errorf("read %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadyReaderError: a refused list names the Service, the namespace
// and the selector, and keeps the API's status.
func TestReadyReaderError(t *testing.T) {
	f := newFakeAPI(t)
	f.setRefuse(func(method, path string) int { return http.StatusForbidden })
	cfg := testConfig("a")
	cfg.Namespace = "lab"
	_, _, err := newReadyReader(cfg, f.client(t)).Read(context.Background(), 0)
	var se *kubeapi.StatusError
	if !errors.As(err, &se) || !kubeapi.IsForbidden(err) || !strings.Contains(err.Error(), "endpointslices of service lab/django") {
		t.Errorf("Read error %v, want a 403 naming the service", err)
	}
}

// TestNewReadyReader: the reader's client comes from the kubeconfig, in
// the namespace of its context when k8s_namespace is unset, as the sink's.
func TestNewReadyReader(t *testing.T) {
	f := newFakeAPI(t)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u, namespace: lab}}]
clusters: [{name: k, cluster: {server: "`+f.srv.URL+`"}}]
users: [{name: u, user: {token: t}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("a")
	cfg.Kubeconfig = kc
	r, err := NewReadyReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Read(context.Background(), 0); err != nil || !strings.HasPrefix(f.lastReq.URL.Path, "/apis/discovery.k8s.io/v1/namespaces/lab/") {
		t.Errorf("Read: %v, asked %s; want a list in namespace lab", err, f.lastReq.URL)
	}
	cfg.Kubeconfig = filepath.Join(t.TempDir(), "missing")
	if _, err := NewReadyReader(cfg); err == nil || !strings.Contains(err.Error(), "relay source kubernetes") {
		t.Errorf("a missing kubeconfig: %v", err)
	}
}
