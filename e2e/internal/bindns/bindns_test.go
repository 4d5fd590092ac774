package bindns

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// TestBINDUpdate: named in a namespace takes an RFC 2136 update signed with
// its key (nsupdate, from another namespace), refuses an unsigned one, and
// dig answers what the update wrote; the zone transfer needs the key.
func TestBINDUpdate(t *testing.T) {
	Require(t)
	netns.RequireTool(t, "nsupdate")
	lab := netns.New(t)
	br := lab.Bridge("dns")
	srv := lab.Host("bind", br, "10.213.53.53/24")
	client := lab.Host("client", br, "10.213.53.10/24")
	s := Start(t, srv, "10.213.53.53", Options{Port: 5353})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	update := func(key bool, cmds ...string) (string, error) {
		script := fmt.Sprintf("server %s %d\nzone %s\n%s\nsend\n", s.Addr.Addr(), s.Addr.Port(), s.Zone, strings.Join(cmds, "\n"))
		nsupdate := "nsupdate -t 5"
		if key {
			nsupdate += " -y " + s.TSIG()
		}
		argv := []string{"sh", "-c", `printf '%s' "$1" | ` + nsupdate, "sh", script}
		r := client.Run(ctx, argv...)
		return r.Stdout + r.Stderr, r.Err
	}
	if out, err := update(false, "update add x.lab.test. 30 A 10.213.53.99"); err == nil || !strings.Contains(out, "REFUSED") {
		t.Errorf("unsigned update: %v %s, want REFUSED", err, out)
	}
	if out, err := update(true, "update add django.lab.test. 30 A 10.213.53.31", "update add django.lab.test. 30 A 10.213.53.32",
		"update add _http._tcp.django.lab.test. 30 SRV 0 50 8000 s1.lab.test."); err != nil {
		t.Fatalf("signed update: %v %s", err, out)
	}
	recs, err := s.Dig(ctx, client, "django.lab.test", "A")
	if err != nil {
		t.Fatal(err)
	}
	if got := Data(recs, "A"); !slices.Equal(got, []string{"10.213.53.31", "10.213.53.32"}) || recs[0].TTL != 30 {
		t.Errorf("A records %v, want 10.213.53.31 and .32 with TTL 30", recs)
	}
	recs, err = s.Dig(ctx, client, "_http._tcp.django.lab.test", "SRV")
	if err != nil {
		t.Fatal(err)
	}
	if got := Data(recs, "SRV"); !slices.Equal(got, []string{"0 50 8000 s1.lab.test."}) {
		t.Errorf("SRV records %v", recs)
	}
	if recs, err := s.Dig(ctx, client, "x.lab.test", "A"); err != nil || len(recs) != 0 {
		t.Errorf("x.lab.test (the refused update): %v %v, want no records", recs, err)
	}
	all, err := s.Transfer(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := Data(all, "A"); !slices.Contains(got, "10.213.53.31") {
		t.Errorf("AXFR with the key: %v", all)
	}
	if recs, err := dig(ctx, client, s.Addr, s.Zone, "AXFR"); err == nil {
		t.Errorf("AXFR without the key: %v, want refused", recs)
	}
}
