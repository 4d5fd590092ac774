package discover

import (
	"net/netip"
	"strconv"
	"testing"
)

var parseReplyCases = []struct {
	name    string
	payload string
	prefix  string
	ip      string // "" when !ok
	port    uint16
	hasPort bool
}{
	{"stock server", "SERVER_IP:10.1.2.3", "SERVER_IP:", "10.1.2.3", 0, false},
	{"with port", "SERVER_IP:10.1.2.3:8080", "SERVER_IP:", "10.1.2.3", 8080, true},
	{"whitespace around", "SERVER_IP: 10.1.2.3 \n", "SERVER_IP:", "10.1.2.3", 0, false},
	{"all ascii spaces", "SERVER_IP:\t\v\f\r\n\x1c\x1d\x1e\x1f 1.2.3.4:1 \r\n", "SERVER_IP:", "1.2.3.4", 1, true},
	{"unicode nbsp and ideographic space", "SERVER_IP:\u00a01.2.3.4\u3000", "SERVER_IP:", "1.2.3.4", 0, false},
	{"leading zeros normalised", "SERVER_IP:01.002.3.4", "SERVER_IP:", "1.2.3.4", 0, false},
	{"many leading zeros", "SERVER_IP:0000000000001.2.3.255:0008000", "SERVER_IP:", "1.2.3.255", 8000, true},
	{"zeros", "SERVER_IP:0.0.0.0", "SERVER_IP:", "0.0.0.0", 0, false},
	{"max", "SERVER_IP:255.255.255.255:65535", "SERVER_IP:", "255.255.255.255", 65535, true},
	{"loopback as stock server without route", "SERVER_IP:127.0.0.1", "SERVER_IP:", "127.0.0.1", 0, false},
	{"invalid utf8 dropped at end", "SERVER_IP:1.2.3.4\xff", "SERVER_IP:", "1.2.3.4", 0, false},
	{"invalid utf8 dropped inside", "SERVER_IP:1.2\xfe.3.4", "SERVER_IP:", "1.2.3.4", 0, false},
	{"custom prefix", "HERE 9.9.9.9", "HERE", "9.9.9.9", 0, false},
	{"empty prefix", "9.9.9.9:1", "", "9.9.9.9", 1, true},

	{"wrong prefix", "SERVER_IQ:10.1.2.3", "SERVER_IP:", "", 0, false},
	{"prefix case", "server_ip:10.1.2.3", "SERVER_IP:", "", 0, false},
	{"space before prefix", " SERVER_IP:10.1.2.3", "SERVER_IP:", "", 0, false},
	{"short payload", "SERVER", "SERVER_IP:", "", 0, false},
	{"empty", "", "SERVER_IP:", "", 0, false},
	{"only prefix", "SERVER_IP:", "SERVER_IP:", "", 0, false},
	{"only whitespace", "SERVER_IP: \n", "SERVER_IP:", "", 0, false},
	{"three parts", "SERVER_IP:1.2.3", "SERVER_IP:", "", 0, false},
	{"five parts", "SERVER_IP:1.2.3.4.5", "SERVER_IP:", "", 0, false},
	{"empty part", "SERVER_IP:1..3.4", "SERVER_IP:", "", 0, false},
	{"trailing dot", "SERVER_IP:1.2.3.4.", "SERVER_IP:", "", 0, false},
	{"octet 256", "SERVER_IP:1.2.3.256", "SERVER_IP:", "", 0, false},
	{"octet huge", "SERVER_IP:1.2.3.99999999999999999999999", "SERVER_IP:", "", 0, false},
	{"sign", "SERVER_IP:+1.2.3.4", "SERVER_IP:", "", 0, false},
	{"negative", "SERVER_IP:1.-2.3.4", "SERVER_IP:", "", 0, false},
	{"underscore", "SERVER_IP:1_0.2.3.4", "SERVER_IP:", "", 0, false},
	{"inner space", "SERVER_IP:1. 2.3.4", "SERVER_IP:", "", 0, false},
	{"arabic digit", "SERVER_IP:\u0661.2.3.4", "SERVER_IP:", "", 0, false},
	{"hostname", "SERVER_IP:example.com", "SERVER_IP:", "", 0, false},
	{"ipv6", "SERVER_IP:::1", "SERVER_IP:", "", 0, false},
	{"port zero", "SERVER_IP:1.2.3.4:0", "SERVER_IP:", "", 0, false},
	{"port too big", "SERVER_IP:1.2.3.4:65536", "SERVER_IP:", "", 0, false},
	{"port empty", "SERVER_IP:1.2.3.4:", "SERVER_IP:", "", 0, false},
	{"port sign", "SERVER_IP:1.2.3.4:+80", "SERVER_IP:", "", 0, false},
	{"two colons", "SERVER_IP:1.2.3.4:80:90", "SERVER_IP:", "", 0, false},
	{"port with dot", "SERVER_IP:1.2.3.4:80.5", "SERVER_IP:", "", 0, false},
	{"colon before ip", "SERVER_IP::1.2.3.4", "SERVER_IP:", "", 0, false},
	{"nul inside", "SERVER_IP:1.2.3.4\x00", "SERVER_IP:", "", 0, false},
}

func TestParseReply(t *testing.T) {
	for _, tc := range parseReplyCases {
		t.Run(tc.name, func(t *testing.T) {
			ip, port, hasPort, ok := ParseReply([]byte(tc.payload), []byte(tc.prefix))
			wantOK := tc.ip != ""
			if ok != wantOK {
				t.Fatalf("ParseReply(%q) ok = %v, want %v (ip %v)", tc.payload, ok, wantOK, ip)
			}
			if !ok {
				return
			}
			if got := ip.String(); got != tc.ip || port != tc.port || hasPort != tc.hasPort {
				t.Errorf("ParseReply(%q) = %s, %d, %v; want %s, %d, %v",
					tc.payload, got, port, hasPort, tc.ip, tc.port, tc.hasPort)
			}
		})
	}
}

func TestParseReplyAllocs(t *testing.T) {
	payload, prefix := []byte("SERVER_IP: 10.1.2.3:8000\n"), []byte("SERVER_IP:")
	if n := testing.AllocsPerRun(100, func() { ParseReply(payload, prefix) }); n != 0 {
		t.Errorf("ParseReply allocates %v times per call, want 0", n)
	}
}

func TestRawString(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "SERVER_IP:1.2.3.4", "SERVER_IP:1.2.3.4"},
		{"invalid dropped", "SERVER_IP:\xff1.2.3.4\xfe\xfd", "SERVER_IP:1.2.3.4"},
		{"valid unicode kept", "SERVER_IP:\u00a01.2.3.4", "SERVER_IP:\u00a01.2.3.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RawString([]byte(tc.in)); got != tc.want {
				t.Errorf("RawString(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	for _, tc := range parseReplyCases {
		f.Add([]byte(tc.payload), []byte(tc.prefix))
	}
	f.Fuzz(func(t *testing.T, payload, prefix []byte) {
		ip, port, hasPort, ok := ParseReply(payload, prefix)
		if !ok {
			if ip.IsValid() || port != 0 || hasPort {
				t.Fatalf("not ok but returned %v %d %v", ip, port, hasPort)
			}
			return
		}
		if !ip.Is4() {
			t.Fatalf("ok with non-IPv4 %v", ip)
		}
		if hasPort != (port != 0) {
			t.Fatalf("hasPort %v with port %d", hasPort, port)
		}
		// Round trip: the canonical form parses to the same values.
		s := string(prefix) + ip.String()
		if hasPort {
			s += ":" + strconv.Itoa(int(port))
		}
		ip2, port2, hasPort2, ok2 := ParseReply([]byte(s), prefix)
		if !ok2 || ip2 != ip || port2 != port || hasPort2 != hasPort {
			t.Fatalf("reparse of %q = %v %d %v %v, want %v %d %v", s, ip2, port2, hasPort2, ok2, ip, port, hasPort)
		}
		if _, err := netip.ParseAddr(ip.String()); err != nil {
			t.Fatalf("%v does not reparse with netip: %v", ip, err)
		}
	})
}
