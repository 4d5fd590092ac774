package discover

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestNewValidates(t *testing.T) {
	l := iface.ListerFunc(func() ([]iface.Interface, error) { return nil, nil })
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"zero bounds get defaults", func(o *Options) { o.MaxDatagram, o.RecvBuffer, o.MaxTokenAge, o.ClockSkew = 0, 0, 0, 0 }, ""},
		{"port 0", func(o *Options) { o.Port = 0 }, "discovery_port: want a port number 1..65535, got 0"},
		{"empty message", func(o *Options) { o.Message = nil }, "discovery_message: must not be empty"},
		{"huge message", func(o *Options) { o.Message = make([]byte, 70000) }, "discovery_message: must be at most 65507 bytes"},
		{"empty prefix", func(o *Options) { o.Prefix = []byte{} }, "response_prefix: must not be empty"},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "timeout: must be > 0, got -1s"},
		{"zero timeout", func(o *Options) { o.Timeout = 0 }, "timeout: must be > 0, got 0s"},
		{"negative retries", func(o *Options) { o.Retries = -1 }, "retries: want 0..100, got -1"},
		{"retries above the bound of the CLI", func(o *Options) { o.Retries = 1000 }, "retries: want 0..100, got 1000"},
		{"timeout above the ceiling", func(o *Options) { o.Timeout = 11 * time.Minute }, "timeout: at most 10m, got 11m0s"},
		{"default port 0", func(o *Options) { o.DefaultPort = 0 }, "default_port: want a port number 1..65535, got 0"},
		{"bad policy", func(o *Options) { o.AddressFrom = "dns" }, `address_from: want one of auto, payload, source, got "dns"`},
		{"empty policy", func(o *Options) { o.AddressFrom = "" }, `address_from: want one of auto, payload, source, got ""`},
		{"scan rate 0", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}; o.ScanRate = 0 }, "scan_rate: must be > 0 when scanning, got 0"},
		{"scan rate 0 without cidrs", func(o *Options) { o.ScanRate = 0 }, ""},
		{"scan /16 ok", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")} }, ""},
		{"scan /8", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, "scan_cidrs: 10.0.0.0/8 has 16777214 hosts, more than the limit of 65536"},
		{"scan total", func(o *Options) {
			o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/22")}
		}, "scan_cidrs: 66556 hosts in 2 networks, more than the limit of 65536"},
		{"scan ipv6", func(o *Options) { o.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("fd00::/120")} }, "scan_cidrs: fd00::/120 is not an IPv4 network"},
		{"max replies 0", func(o *Options) { o.MaxReplies = 0 }, "max_replies: must be > 0, got 0"},
		{"interface regex", func(o *Options) { o.InterfaceRegex = "eth[" }, `interfaces_regex: bad pattern "eth[": error parsing regexp`},
		{"interface skip regex", func(o *Options) { o.InterfaceSkipRegex = "(" }, `interfaces_skip_regex: bad pattern "("`},
		{"interface cidr ipv6", func(o *Options) { o.InterfaceCIDRs = []netip.Prefix{netip.MustParsePrefix("fd00::/8")} }, "interfaces_cidrs: fd00::/8 is not an IPv4 network"},
		{"interface can reach ipv6", func(o *Options) { o.InterfaceCanReach = netip.MustParseAddr("fd00::1") }, "interfaces_can_reach: fd00::1 is not an IPv4 address"},
		{"max datagram negative", func(o *Options) { o.MaxDatagram = -1 }, "max_datagram: must be 1..65507, got -1"},
		{"negative settle", func(o *Options) { o.Settle = -time.Second }, "settle: must be >= 0, got -1s"},
		{"negative token age", func(o *Options) { o.MaxTokenAge = -time.Second }, "max_token_age: must be > 0, got -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			c, err := New(o, l, nil, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New = %v, want ok", err)
				}
				got := c.Options()
				if got.MaxDatagram == 0 || got.RecvBuffer == 0 || got.MaxTokenAge == 0 || got.ClockSkew == 0 {
					t.Errorf("defaults not filled in: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		o := DefaultOptions()
		o.Port, o.Timeout = 0, 0
		_, err := New(o, l, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "discovery_port") || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("New error = %v, want both keys", err)
		}
	})
	t.Run("nil lister", func(t *testing.T) {
		if _, err := New(DefaultOptions(), nil, nil, nil); err == nil {
			t.Fatal("New accepted a nil lister")
		}
	})
}
