package cidr

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestPrefixLenFromMask(t *testing.T) {
	tests := []struct {
		name    string
		mask    netip.Addr
		want    int
		wantErr string // substring; empty means no error
	}{
		{"zero", netip.MustParseAddr("0.0.0.0"), 0, ""},
		{"slash1", netip.MustParseAddr("128.0.0.0"), 1, ""},
		{"slash8", netip.MustParseAddr("255.0.0.0"), 8, ""},
		{"slash20", netip.MustParseAddr("255.255.240.0"), 20, ""},
		{"slash24", netip.MustParseAddr("255.255.255.0"), 24, ""},
		{"slash31", netip.MustParseAddr("255.255.255.254"), 31, ""},
		{"slash32", netip.MustParseAddr("255.255.255.255"), 32, ""},
		{"hole in middle", netip.MustParseAddr("255.0.255.0"), 0, `"255.0.255.0"`},
		{"leading zero bit", netip.MustParseAddr("127.255.255.0"), 0, "not contiguous"},
		{"trailing one", netip.MustParseAddr("255.255.255.1"), 0, "not contiguous"},
		{"wildcard mask", netip.MustParseAddr("0.0.0.255"), 0, "not contiguous"},
		{"ipv6", netip.MustParseAddr("ffff:ffff::"), 0, "not an IPv4"},
		{"ipv4-mapped", netip.MustParseAddr("::ffff:255.255.255.0"), 0, "not an IPv4"},
		{"zero addr", netip.Addr{}, 0, "invalid netmask"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PrefixLenFromMask(tt.mask)
			checkErr(t, err, tt.wantErr)
			if err == nil && got != tt.want {
				t.Errorf("PrefixLenFromMask(%s) = %d, want %d", tt.mask, got, tt.want)
			}
			if err != nil && !errors.Is(err, ErrInvalidMask) {
				t.Errorf("error %v does not wrap ErrInvalidMask", err)
			}
		})
	}
}

func TestMaskFromPrefixLen(t *testing.T) {
	tests := []struct {
		bits    int
		want    string
		wantErr bool
	}{
		{-1, "", true},
		{0, "0.0.0.0", false},
		{1, "128.0.0.0", false},
		{9, "255.128.0.0", false},
		{22, "255.255.252.0", false},
		{24, "255.255.255.0", false},
		{31, "255.255.255.254", false},
		{32, "255.255.255.255", false},
		{33, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.want+"_"+itoa(tt.bits), ".", "_"), func(t *testing.T) {
			got, err := MaskFromPrefixLen(tt.bits)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), itoa(tt.bits)) {
					t.Fatalf("MaskFromPrefixLen(%d) error = %v, want one naming %d", tt.bits, err, tt.bits)
				}
				return
			}
			if err != nil {
				t.Fatalf("MaskFromPrefixLen(%d): %v", tt.bits, err)
			}
			if got.String() != tt.want {
				t.Errorf("MaskFromPrefixLen(%d) = %s, want %s", tt.bits, got, tt.want)
			}
		})
	}
	// Every length round-trips.
	for b := 0; b <= 32; b++ {
		m, err := MaskFromPrefixLen(b)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := PrefixLenFromMask(m); err != nil || got != b {
			t.Errorf("PrefixLenFromMask(MaskFromPrefixLen(%d)) = %d, %v", b, got, err)
		}
	}
}

var parseMaskTests = []struct {
	in      string
	want    int
	wantErr bool
}{
	{"255.255.255.0", 24, false},
	{"255.255.0.0", 16, false},
	{"0.0.0.0", 0, false},
	{"255.255.255.255", 32, false},
	{"255.255.255.254", 31, false},
	{"24", 24, false},
	{"/24", 24, false},
	{"0", 0, false},
	{"/0", 0, false},
	{"32", 32, false},
	{"/32", 32, false},
	{"8", 8, false},
	{"", 0, true},
	{"/", 0, true},
	{"33", 0, true},
	{"/33", 0, true},
	{"-1", 0, true},
	{"+24", 0, true},
	{"024", 0, true},
	{"00", 0, true},
	{"//24", 0, true},
	{" 24", 0, true},
	{"24 ", 0, true},
	{"255.0.255.0", 0, true},
	{"255.255.255.00", 0, true},
	{"255.255.255", 0, true},
	{"/255.255.255.0", 0, true},
	{"ffff:ffff::", 0, true},
	{"::ffff:255.255.255.0", 0, true},
	{"abc", 0, true},
	{"4294967296", 0, true},
}

func TestParseMask(t *testing.T) {
	for _, tt := range parseMaskTests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMask(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseMask(%q) = %d, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), `"`+tt.in+`"`) {
					t.Errorf("ParseMask(%q) error %q does not name the input", tt.in, err)
				}
				if !errors.Is(err, ErrInvalidMask) {
					t.Errorf("ParseMask(%q) error %v does not wrap ErrInvalidMask", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseMask(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseMask(f *testing.F) {
	for _, tt := range parseMaskTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMask(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Errorf("ParseMask(%q) error %q does not name the input", s, err)
			}
			return
		}
		if n < 0 || n > 32 {
			t.Fatalf("ParseMask(%q) = %d, outside 0..32", s, n)
		}
		m, err := MaskFromPrefixLen(n)
		if err != nil {
			t.Fatalf("MaskFromPrefixLen(%d) from %q: %v", n, s, err)
		}
		back, err := PrefixLenFromMask(m)
		if err != nil || back != n {
			t.Fatalf("round trip %q -> %d -> %s -> %d, %v", s, n, m, back, err)
		}
		// The canonical spellings parse to the same length.
		for _, c := range []string{m.String(), itoa(n), "/" + itoa(n)} {
			if got, err := ParseMask(c); err != nil || got != n {
				t.Errorf("ParseMask(%q) = %d, %v; want %d (from %q)", c, got, err, n, s)
			}
		}
	})
}

func TestNetwork(t *testing.T) {
	tests := []struct {
		name    string
		ip      string
		mask    string
		want    string
		wantErr string
	}{
		{"dotted /16", "10.1.2.3", "255.255.0.0", "10.1.0.0/16", ""},
		{"bare len", "10.1.2.3", "22", "10.1.0.0/22", ""},
		{"slash len", "172.16.9.5", "/20", "172.16.0.0/20", ""},
		{"slash 0", "192.168.1.7", "/0", "0.0.0.0/0", ""},
		{"slash 31", "10.0.0.7", "31", "10.0.0.6/31", ""},
		{"slash 32", "10.0.0.7", "255.255.255.255", "10.0.0.7/32", ""},
		{"non-contiguous", "10.0.0.7", "255.0.255.0", "", `"255.0.255.0"`},
		{"bad len", "10.0.0.7", "40", "", `"40"`},
		{"ipv6 ip", "2001:db8::1", "24", "", `"2001:db8::1"`},
		{"mapped ip", "::ffff:10.0.0.1", "24", "", "not an IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Network(netip.MustParseAddr(tt.ip), tt.mask)
			checkErr(t, err, tt.wantErr)
			if err == nil && got.String() != tt.want {
				t.Errorf("Network(%s, %q) = %s, want %s", tt.ip, tt.mask, got, tt.want)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	tests := []struct {
		prefix string
		want   string
	}{
		{"10.1.2.3/16", "10.1.255.255"},
		{"10.1.0.0/16", "10.1.255.255"},
		{"10.213.9.5/22", "10.213.11.255"},
		{"192.168.1.10/24", "192.168.1.255"},
		{"172.16.5.4/12", "172.31.255.255"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"1.2.3.4/0", "255.255.255.255"},
		{"10.0.0.4/30", "10.0.0.7"},
		{"10.0.0.6/31", "10.0.0.7"},
		{"10.0.0.7/31", "10.0.0.7"},
		{"10.0.0.7/32", "10.0.0.7"},
		{"127.0.0.1/8", "127.255.255.255"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := Broadcast(netip.MustParsePrefix(tt.prefix)); got.String() != tt.want {
				t.Errorf("Broadcast(%s) = %s, want %s", tt.prefix, got, tt.want)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("2001:db8::/64")} {
			if got := Broadcast(p); got.IsValid() {
				t.Errorf("Broadcast(%v) = %s, want zero Addr", p, got)
			}
		}
	})
}

func TestAnyContains(t *testing.T) {
	ps := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("192.168.50.7/24"), {}}
	tests := []struct {
		ip   string
		want bool
	}{
		{"10.1.0.20", true},
		{"10.1.1.20", false},
		{"192.168.50.1", true}, // an unmasked prefix contains its network
		{"::ffff:10.1.0.20", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		if got := AnyContains(ps, netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("AnyContains(%v, %s) = %v, want %v", ps, tt.ip, got, tt.want)
		}
	}
	if AnyContains(nil, netip.MustParseAddr("10.1.0.20")) {
		t.Error("AnyContains(nil, ...) = true")
	}
}

func TestHostCount(t *testing.T) {
	tests := []struct {
		prefix string
		want   uint64
	}{
		{"0.0.0.0/0", 1<<32 - 2},
		{"10.0.0.0/8", 1<<24 - 2},
		{"10.0.0.0/16", 65534},
		{"10.213.8.0/22", 1022},
		{"192.168.1.0/24", 254},
		{"10.0.0.0/29", 6},
		{"10.0.0.0/30", 2},
		{"10.0.0.0/31", 2},
		{"10.0.0.1/32", 1},
		{"2001:db8::/64", 0},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := HostCount(netip.MustParsePrefix(tt.prefix)); got != tt.want {
				t.Errorf("HostCount(%s) = %d, want %d", tt.prefix, got, tt.want)
			}
		})
	}
	if got := HostCount(netip.Prefix{}); got != 0 {
		t.Errorf("HostCount(zero) = %d, want 0", got)
	}
}

func TestHosts(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string
	}{
		{"10.0.0.0/30", []string{"10.0.0.1", "10.0.0.2"}},
		{"10.0.0.5/29", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}},
		{"10.0.0.6/31", []string{"10.0.0.6", "10.0.0.7"}},
		{"10.0.0.7/31", []string{"10.0.0.6", "10.0.0.7"}},
		{"10.0.0.7/32", []string{"10.0.0.7"}},
		{"255.255.255.255/32", []string{"255.255.255.255"}},
		{"255.255.255.254/31", []string{"255.255.255.254", "255.255.255.255"}},
		{"2001:db8::/126", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.prefix)
			var got []string
			for a := range Hosts(p) {
				got = append(got, a.String())
			}
			if uint64(len(got)) != HostCount(p) {
				t.Errorf("Hosts(%s) yielded %d, HostCount says %d", p, len(got), HostCount(p))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Hosts(%s) = %v, want %v", p, got, tt.want)
			}
			if len(got) > 1 && !slices.IsSortedFunc(got, func(a, b string) int {
				return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b))
			}) {
				t.Errorf("Hosts(%s) not ascending: %v", p, got)
			}
		})
	}
	t.Run("slash0 ends and stops early", func(t *testing.T) {
		var first []netip.Addr
		for a := range Hosts(netip.MustParsePrefix("0.0.0.0/0")) {
			first = append(first, a)
			if len(first) == 3 {
				break
			}
		}
		want := []netip.Addr{netip.MustParseAddr("0.0.0.1"), netip.MustParseAddr("0.0.0.2"), netip.MustParseAddr("0.0.0.3")}
		if !slices.Equal(first, want) {
			t.Errorf("first hosts of /0 = %v, want %v", first, want)
		}
	})
	t.Run("slash23 bounds", func(t *testing.T) {
		var lo, hi netip.Addr
		n := 0
		for a := range Hosts(netip.MustParsePrefix("10.0.0.255/23")) {
			if n == 0 {
				lo = a
			}
			hi = a
			n++
		}
		if n != 510 || lo.String() != "10.0.0.1" || hi.String() != "10.0.1.254" {
			t.Errorf("Hosts(10.0.0.0/23): n=%d first=%s last=%s", n, lo, hi)
		}
	})
	t.Run("no allocations", func(t *testing.T) {
		p := netip.MustParsePrefix("10.0.0.0/22")
		allocs := testing.AllocsPerRun(10, func() {
			for a := range Hosts(p) {
				_ = a
			}
		})
		if allocs > 1 {
			t.Errorf("walking a /22 allocated %.0f times", allocs)
		}
	})
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
