package kubernetes

import (
	"context"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// dnsConfig is testConfig writing the DNSEndpoint, with the slices or
// without.
func dnsConfig(id string, slicesToo, srv bool) Config {
	c := testConfig(id)
	c.NoSlices = !slicesToo
	c.DNS = &DNSConfig{Object: "django", Name: "django.lab.test", TTL: 30 * time.Second, SRV: srv}
	return c
}

func readDNS(t *testing.T, s *Sink) (kubeapi.DNSEndpoint, bool) {
	t.Helper()
	var obj kubeapi.DNSEndpoint
	err := s.o.Get(context.Background(), kubeapi.DNSEndpoints, "django", &obj)
	if kubeapi.IsNotFound(err) {
		return obj, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return obj, true
}

func entry(a string, passing, ready bool, since time.Time) fleet.Entry[spec] {
	ap := netip.MustParseAddrPort(a)
	return fleet.Entry[spec]{Key: ap.String(), Spec: spec{addr: ap, ready: ready}, Passing: passing, Since: since}
}

func entries(es ...fleet.Entry[spec]) map[string]fleet.Entry[spec] {
	out := map[string]fleet.Entry[spec]{}
	for _, e := range es {
		out[e.Key] = e
	}
	return out
}

// TestDNSRecords: the records a consumer publishes: the ready servers'
// addresses under the name (each address once, sorted), nothing of the
// not ready or unobserved ones; with SRV an A record per address and the
// SRV record with each ready server's port.
func TestDNSRecords(t *testing.T) {
	since := t0
	set := entries(
		entry("10.1.0.9:8000", true, true, time.Time{}),
		entry("10.1.0.5:8000", true, true, time.Time{}),
		entry("10.1.0.5:9000", true, true, time.Time{}),  // a second port of one address
		entry("10.1.0.6:8000", true, false, time.Time{}), // observed, app check failing
		entry("10.1.0.7:8000", false, false, since),      // unobserved
	)
	tests := []struct {
		name string
		cfg  DNSConfig
		set  map[string]fleet.Entry[spec]
		want []kubeapi.DNSRecord
	}{
		{"A only", DNSConfig{Name: "django.lab.test", TTL: 30 * time.Second}, set, []kubeapi.DNSRecord{
			{DNSName: "django.lab.test", RecordType: "A", Targets: []string{"10.1.0.5", "10.1.0.9"}, RecordTTL: 30}}},
		{"SRV", DNSConfig{Name: "django.lab.test", SRV: true}, set, []kubeapi.DNSRecord{
			{DNSName: "django.lab.test", RecordType: "A", Targets: []string{"10.1.0.5", "10.1.0.9"}},
			{DNSName: "10-1-0-5.django.lab.test", RecordType: "A", Targets: []string{"10.1.0.5"}},
			{DNSName: "10-1-0-9.django.lab.test", RecordType: "A", Targets: []string{"10.1.0.9"}},
			{DNSName: "_http._tcp.django.lab.test", RecordType: "SRV", Targets: []string{
				"0 0 8000 10-1-0-5.django.lab.test.", "0 0 9000 10-1-0-5.django.lab.test.", "0 0 8000 10-1-0-9.django.lab.test."}}}},
		{"nothing ready", DNSConfig{Name: "django.lab.test", SRV: true}, entries(entry("10.1.0.6:8000", true, false, time.Time{})), []kubeapi.DNSRecord{}},
		{"empty", DNSConfig{Name: "django.lab.test"}, nil, []kubeapi.DNSRecord{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dnsRecords(tt.cfg, "http", tt.set); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestServersAnnotation: the state annotation spells every entry and
// reads back to the same entries (since to the second); a tampered one is
// refused whole.
func TestServersAnnotation(t *testing.T) {
	since := time.Unix(1_765_000_000, 0)
	set := entries(entry("10.1.0.10:8000", true, true, time.Time{}), entry("10.1.0.9:8000", true, false, time.Time{}),
		entry("10.1.0.7:8000", false, false, since))
	s := encodeServers(set)
	if want := "10.1.0.7:8000=u1765000000,10.1.0.9:8000=n,10.1.0.10:8000=r"; s != want {
		t.Fatalf("encoded %q, want %q", s, want)
	}
	back, err := decodeServers(s)
	if err != nil || !reflect.DeepEqual(back, set) {
		t.Fatalf("decoded %v (%v), want %v", back, err, set)
	}
	for _, bad := range []string{"10.1.0.7:8000", "10.1.0.7=r", "10.1.0.7:8000=x", "10.1.0.7:8000=u", "10.1.0.7:8000=uabc",
		"[::1]:80=r", "10.1.0.7:8000=r,10.1.0.7:8000=n", ",", "10.1.0.7:8000="} {
		if _, err := decodeServers(bad); err == nil {
			t.Errorf("decodeServers(%q): no error", bad)
		}
	}
}

// FuzzDecodeServers: the annotation is read from the API, where anyone
// with write rights on the object may have changed it: no input panics,
// and what decodes encodes back to a string that decodes the same.
func FuzzDecodeServers(f *testing.F) {
	f.Add("10.1.0.7:8000=u1765000000,10.1.0.9:8000=n,10.1.0.10:8000=r")
	f.Add("")
	f.Add("1.2.3.4:1=u-99999999999")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeServers(s)
		if err != nil {
			return
		}
		again, err := decodeServers(encodeServers(got))
		if err != nil || !maps.EqualFunc(got, again, func(a, b fleet.Entry[spec]) bool { return reflect.DeepEqual(a, b) }) {
			t.Fatalf("%q: decoded %v, re-encoded and decoded %v (%v)", s, got, again, err)
		}
	})
}

// TestDNSEndpointAlone: k8s_write dnsendpoint only: the leader writes one
// DNSEndpoint (no Service, no slices), spec and the servers' states,
// labelled with the fleet; a quiet round writes nothing; an unobserved
// server leaves the records at once and the annotation after
// deregister_after; a new term reads the states back from the annotation
// and writes nothing.
func TestDNSEndpointAlone(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, dnsConfig("a", false, false))
	servers := addrs(3, 8000)
	_, n := round(t, io, desired(servers), clk.Now())
	if n != 1 || f.writeCount("dnsendpoints") != 1 || f.writeCount("endpointslices") != 0 || f.writeCount("services") != 0 {
		t.Fatalf("first round: %d writes, %v: want the DNSEndpoint alone", n, f.writes)
	}
	obj, ok := readDNS(t, s)
	if !ok {
		t.Fatal("no DNSEndpoint")
	}
	want := []kubeapi.DNSRecord{{DNSName: "django.lab.test", RecordType: "A", Targets: []string{"10.213.0.1", "10.213.0.2", "10.213.0.3"}, RecordTTL: 30}}
	if !reflect.DeepEqual(obj.Spec.Endpoints, want) || obj.Metadata.Labels[LabelFleet] != "django" || obj.APIVersion != "externaldns.k8s.io/v1alpha1" {
		t.Fatalf("DNSEndpoint %+v", obj)
	}
	if _, n := round(t, io, desired(servers), clk.Now()); n != 0 {
		t.Fatalf("quiet round: %d writes", n)
	}

	clk.Advance(time.Second)
	gone := clk.Now()
	if _, n := round(t, io, desired(servers[:2]), gone); n != 1 {
		t.Fatalf("a server unobserved: %d writes, want 1", n)
	}
	obj, _ = readDNS(t, s)
	if got := obj.Spec.Endpoints[0].Targets; !slices.Equal(got, []string{"10.213.0.1", "10.213.0.2"}) {
		t.Errorf("records after the server went: %v", got)
	}
	if a := obj.Metadata.Annotations[AnnotServers]; !strings.Contains(a, "10.213.0.3:8000=u") {
		t.Errorf("annotation %q: want the unobserved server kept with its since", a)
	}

	// A new term (another leader, or this one again) reads the states
	// from the annotation: nothing to write.
	io2 := newLeaderIO(s, io.log)
	if _, n := round(t, io2, desired(servers[:2]), clk.Now()); n != 0 {
		t.Fatalf("new term: %d writes, want 0", n)
	}
	clk.Advance(s.cfg.DeregisterAfter)
	if _, n := round(t, io2, desired(servers[:2]), clk.Now()); n != 1 {
		t.Fatalf("deregister_after passed: %d writes, want 1", n)
	}
	obj, _ = readDNS(t, s)
	if a := obj.Metadata.Annotations[AnnotServers]; strings.Contains(a, "10.213.0.3") {
		t.Errorf("annotation %q still holds the removed server", a)
	}

	// Nothing observed: the records go, the object stays (empty spec).
	if _, n := round(t, io2, desired(), clk.Now()); n != 1 {
		t.Fatalf("every server unobserved: %d writes", n)
	}
	obj, _ = readDNS(t, s)
	if len(obj.Spec.Endpoints) != 0 {
		t.Errorf("records with nothing ready: %v", obj.Spec.Endpoints)
	}
}

// TestDNSEndpointMirrorsSlices: with both written, the slices are the
// registry and the DNSEndpoint follows them (no annotation); a quiet round
// writes nothing; a DNSEndpoint edited behind the leader's back is
// rewritten at its next read (the resync); one of another owner is
// refused, not overwritten.
func TestDNSEndpointMirrorsSlices(t *testing.T) {
	f := newFakeAPI(t)
	clk := clocktest.New(t0)
	s, io := leading(t, f, clk, dnsConfig("a", true, true))
	servers := addrs(2, 8000)
	if _, n := round(t, io, desired(servers), clk.Now()); n != 1+1+1 { // Service, slice, DNSEndpoint
		t.Fatalf("first round: %d writes, want 3 (%v)", n, f.writes)
	}
	obj, _ := readDNS(t, s)
	if len(obj.Spec.Endpoints) != 4 || obj.Metadata.Annotations[AnnotServers] != "" {
		t.Fatalf("DNSEndpoint %+v: want A, two per-server A and SRV, no annotation", obj)
	}
	if _, n := round(t, io, desired(servers), clk.Now()); n != 0 {
		t.Fatalf("quiet round: %d writes", n)
	}

	// Someone edits the records: the next read (a resync) writes them again.
	obj.Spec.Endpoints[0].Targets = []string{"192.0.2.66"}
	if err := s.o.Apply(context.Background(), kubeapi.DNSEndpoints, "django", &obj, nil); err != nil {
		t.Fatal(err)
	}
	before := f.writeCount("dnsendpoints")
	if _, err := io.Entries(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.writeCount("dnsendpoints") != before+1 {
		t.Errorf("the edited DNSEndpoint was not rewritten")
	}
	obj, _ = readDNS(t, s)
	if got := obj.Spec.Endpoints[0].Targets; !slices.Equal(got, []string{"10.213.0.1", "10.213.0.2"}) {
		t.Errorf("records after the repair: %v", got)
	}

	// Another owner's DNSEndpoint of the same name: refused.
	f2 := newFakeAPI(t)
	foreign := kubeapi.DNSEndpoint{APIVersion: kubeapi.DNSEndpoints.APIVersion(), Kind: kubeapi.DNSEndpoints.Kind(),
		Metadata: kubeapi.Meta{Name: "django"}, Spec: kubeapi.DNSEndpointSpec{Endpoints: []kubeapi.DNSRecord{{DNSName: "x.test", RecordType: "A", Targets: []string{"192.0.2.1"}}}}}
	s2, io2 := leading(t, f2, clk, dnsConfig("a", false, false))
	if err := s2.o.Create(context.Background(), kubeapi.DNSEndpoints, &foreign, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := io2.Entries(context.Background()); err == nil || !strings.Contains(err.Error(), "is not this fleet's") {
		t.Errorf("a foreign DNSEndpoint read: %v, want a refusal", err)
	}
	if got, _ := readDNS(t, s2); got.Spec.Endpoints[0].DNSName != "x.test" {
		t.Errorf("the foreign DNSEndpoint was overwritten: %+v", got)
	}
}
