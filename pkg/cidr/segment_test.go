package cidr

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestIsCorporate(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"9.255.255.255", false},
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"172.15.255.255", false},
		{"172.16.0.0", true},
		{"172.31.255.255", true},
		{"172.32.0.0", false},
		{"192.168.1.1", false},
		{"169.254.1.1", false},
		{"127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := IsCorporate(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("IsCorporate(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestDetectSegmented(t *testing.T) {
	tests := []struct {
		name      string
		ip        string
		prefix    int
		broadcast string // empty: zero Addr (computed)
		virtual   bool
		want      *Segmentation
	}{
		{
			name: "10/8 on /16", ip: "10.1.2.3", prefix: 16, broadcast: "10.1.255.255",
			want: &Segmentation{
				Network: netip.MustParsePrefix("10.1.0.0/16"), Prefix: 16, TotalHosts: 65534,
				CalculatedBroadcast:   netip.MustParseAddr("10.1.255.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("10.1.2.0/24"),
				IsCorporate:           true, Segments: 256,
			},
		},
		{
			name: "10/8 on /22 broadcast computed", ip: "10.213.9.5", prefix: 22,
			want: &Segmentation{
				Network: netip.MustParsePrefix("10.213.8.0/22"), Prefix: 22, TotalHosts: 1022,
				CalculatedBroadcast:   netip.MustParseAddr("10.213.11.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("10.213.9.0/24"),
				IsCorporate:           true, Segments: 4,
			},
		},
		{
			name: "10/8 on /8", ip: "10.200.3.4", prefix: 8, broadcast: "10.255.255.255",
			want: &Segmentation{
				Network: netip.MustParsePrefix("10.0.0.0/8"), Prefix: 8, TotalHosts: 1<<24 - 2,
				CalculatedBroadcast:   netip.MustParseAddr("10.255.255.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("10.200.3.0/24"),
				IsCorporate:           true, Segments: 65536,
			},
		},
		{
			name: "172.16 on /20", ip: "172.16.5.4", prefix: 20, broadcast: "172.16.15.255",
			want: &Segmentation{
				Network: netip.MustParsePrefix("172.16.0.0/20"), Prefix: 20, TotalHosts: 4094,
				CalculatedBroadcast:   netip.MustParseAddr("172.16.15.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("172.16.5.0/24"),
				IsCorporate:           true, Segments: 16,
			},
		},
		{
			name: "172.31 on /23", ip: "172.31.255.1", prefix: 23, broadcast: "172.31.255.255",
			// The /24 of .255.1 has the same broadcast as the /23: not flagged.
		},
		{
			name: "172.31 on /23 lower half", ip: "172.31.254.1", prefix: 23, broadcast: "172.31.255.255",
			want: &Segmentation{
				Network: netip.MustParsePrefix("172.31.254.0/23"), Prefix: 23, TotalHosts: 510,
				CalculatedBroadcast:   netip.MustParseAddr("172.31.255.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("172.31.254.0/24"),
				IsCorporate:           true, Segments: 2,
			},
		},
		{name: "172.15 not corporate", ip: "172.15.1.1", prefix: 16, broadcast: "172.15.255.255"},
		{name: "172.32 not corporate", ip: "172.32.1.1", prefix: 16, broadcast: "172.32.255.255"},
		{name: "192.168 excluded", ip: "192.168.1.10", prefix: 16, broadcast: "192.168.255.255"},
		{name: "169.254 excluded", ip: "169.254.3.3", prefix: 16, broadcast: "169.254.255.255"},
		{name: "public excluded", ip: "8.8.8.8", prefix: 16},
		{name: "slash 24", ip: "10.1.2.3", prefix: 24, broadcast: "10.1.2.255"},
		{name: "slash 30", ip: "10.1.2.3", prefix: 30},
		{name: "slash 32", ip: "10.1.2.3", prefix: 32},
		{name: "virtual slash 24 skipped", ip: "172.17.0.1", prefix: 24, virtual: true},
		{
			name: "virtual slash 16 still flagged", ip: "172.17.0.1", prefix: 16, broadcast: "172.17.255.255", virtual: true,
			want: &Segmentation{
				Network: netip.MustParsePrefix("172.17.0.0/16"), Prefix: 16, TotalHosts: 65534,
				CalculatedBroadcast:   netip.MustParseAddr("172.17.255.255"),
				LikelyBroadcastDomain: netip.MustParsePrefix("172.17.0.0/24"),
				IsCorporate:           true, Segments: 256,
			},
		},
		{
			name: "os broadcast equals the /24 one", ip: "10.1.2.3", prefix: 16, broadcast: "10.1.2.255",
		},
		{name: "ipv6", ip: "fd00::1", prefix: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			network := netip.PrefixFrom(ip, tt.prefix)
			var bc netip.Addr
			if tt.broadcast != "" {
				bc = netip.MustParseAddr(tt.broadcast)
			}
			got, ok := DetectSegmented("eth0", ip, network, bc, tt.virtual)
			if tt.want == nil {
				if ok || got != (Segmentation{}) {
					t.Fatalf("DetectSegmented(%s/%d) = %+v, %v; want not flagged", tt.ip, tt.prefix, got, ok)
				}
				return
			}
			want := *tt.want
			want.Interface, want.IP = "eth0", ip
			if !ok || got != want {
				t.Errorf("DetectSegmented(%s/%d) =\n %+v, %v\nwant\n %+v, true", tt.ip, tt.prefix, got, ok, want)
			}
		})
	}
	t.Run("invalid network", func(t *testing.T) {
		if _, ok := DetectSegmented("x", netip.MustParseAddr("10.0.0.1"), netip.Prefix{}, netip.Addr{}, false); ok {
			t.Error("flagged an interface without a network")
		}
	})
}

func TestSegmentationJSON(t *testing.T) {
	s, ok := DetectSegmented("eth0", netip.MustParseAddr("10.1.2.3"), netip.MustParsePrefix("10.1.0.0/16"), netip.MustParseAddr("10.1.255.255"), false)
	if !ok {
		t.Fatal("not flagged")
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"interface":"eth0","ip":"10.1.2.3","network":"10.1.0.0/16","prefix":16,"total_hosts":65534,` +
		`"calculated_broadcast":"10.1.255.255","likely_broadcast_domain":"10.1.2.0/24","is_corporate":true,"segments":256}`
	if string(b) != want {
		t.Errorf("JSON =\n %s\nwant\n %s", b, want)
	}
	var back Segmentation
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, s)
	}
}

func TestAdvice(t *testing.T) {
	s, _ := DetectSegmented("eth0", netip.MustParseAddr("10.1.2.3"), netip.MustParsePrefix("10.1.0.0/16"), netip.Addr{}, false)
	got := s.Advice()
	for _, want := range []string{"eth0", "10.1.2.3", "10.1.0.0/16", "10.1.2.0/24", "256", "--scan-cidr 10.1.0.0/16", "WHITELIST=eth0"} {
		if !strings.Contains(got, want) {
			t.Errorf("Advice() = %q, missing %q", got, want)
		}
	}
}
