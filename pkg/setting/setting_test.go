package setting

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	retries := Key{Name: "retries", Kind: Int, Min: "0", Max: "100"}
	timeout := Key{Name: "timeout", Kind: Duration, Min: "0", MinExclusive: true, Max: "10m"}
	interval := Key{Name: "interval", Kind: Duration, Min: "100ms"}
	skew := Key{Name: "clock_skew", Kind: Duration, Min: "0"}
	fraction := Key{Name: "f", Kind: Float, Min: "0", MinExclusive: true, Max: "1", Hint: "(1 turns the removal guard off)"}
	rounds := Key{Name: "r", Kind: Int, Min: "0", Hint: "(0 turns the removal guard off)"}
	rate := Key{Name: "scan_rate", Kind: Int, Min: "0", MinExclusive: true}
	policy := Key{Name: "address_from", OneOf: []string{"auto", "payload", "source"}}
	sinks := Key{Name: "sinks", Kind: List, OneOf: []string{"stdout", "file"}}
	msg := Key{Name: "m", NonEmpty: true}
	port := Key{Name: "p", Kind: Port}
	flag := Key{Name: "b", Kind: Bool}
	label := Key{Name: "svc", Pattern: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, PatternHint: "want a DNS label", MaxLen: 5, Hint: "(a name)"}
	labels := Key{Name: "svcs", Kind: List, Pattern: `[a-z]+`}
	unique := Key{Name: "sinks", Kind: List, Unique: true}
	cidrs := Key{Name: "cidrs", Kind: List, Pattern: IPv4CIDRPattern, PatternHint: "want an IPv4 network"}
	addr := Key{Name: "addr", Pattern: IPv4Pattern, PatternHint: "want an IPv4 address"}
	for _, tc := range []struct {
		name string
		k    Key
		raw  any
		want any
		why  string
		bad  string
	}{
		{"int", retries, " 7 ", 7, "", ""},
		{"int yaml", retries, 7, 7, "", ""},
		{"int above", retries, "101", nil, "want 0..100", "101"},
		{"int below", retries, "-1", nil, "want 0..100", "-1"},
		{"int garbage", retries, "x", nil, "want a whole number", "x"},
		{"int exclusive", rate, "0", nil, "must be > 0", "0"},
		{"int hint", rounds, "-1", nil, "must be >= 0 (0 turns the removal guard off)", "-1"},
		{"duration seconds", timeout, "0.5", 500 * time.Millisecond, "", ""},
		{"duration yaml number", timeout, 2, 2 * time.Second, "", ""},
		{"duration zero", timeout, "0", nil, "must be > 0", "0s"},
		{"duration ceiling", timeout, "1h", nil, "at most 10m", "1h0m0s"},
		{"duration floor", interval, "1ns", nil, "at least 100ms", "1ns"},
		{"duration floor zero", skew, "-1s", nil, "must be >= 0", "-1s"},
		{"duration garbage", timeout, "soon", nil, "want seconds (5, 0.5) or a duration (500ms, 1m)", "soon"},
		{"duration list", timeout, []any{1, 2}, nil, "want a single value", "[1 2]"},
		{"fraction", fraction, "0.5", 0.5, "", ""},
		{"fraction zero", fraction, "0", nil, "want a fraction 0 < f <= 1 (1 turns the removal guard off)", "0"},
		{"fraction NaN", fraction, "NaN", nil, "want a decimal number such as 0.5", "NaN"},
		{"one of", policy, "payload", "payload", "", ""},
		{"one of bad", policy, "dns", nil, "want one of auto, payload, source", "dns"},
		{"list", sinks, []string{"stdout, file", ""}, []string{"stdout", "file"}, "", ""},
		{"list yaml", sinks, []any{"file"}, []string{"file"}, "", ""},
		{"list element", sinks, "stdout,etcd", nil, "want one of stdout, file", "etcd"},
		{"empty", msg, "", nil, "must not be empty", ""},
		{"port", port, "8000", uint16(8000), "", ""},
		{"port range", port, "70000", nil, "want a port number 1..65535", "70000"},
		{"bool", flag, "on", true, "", ""},
		{"bool yaml", flag, false, false, "", ""},
		{"bool bad", flag, "maybe", nil, "want true/false, 1/0, yes/no or on/off", "maybe"},
		{"pattern", label, "web-1", "web-1", "", ""},
		{"pattern empty", label, "", "", "", ""},
		{"pattern bad", label, "Bad_N", nil, "want a DNS label", "Bad_N"},
		{"pattern whole", label, "web-", nil, "want a DNS label", "web-"},
		{"max length", label, "webweb", nil, "at most 5 characters, got 6 (a name)", "webweb"},
		{"pattern list element", labels, "ab,c1", nil, "want a value matching [a-z]+", "c1"},
		{"unique", unique, "stdout,file", []string{"stdout", "file"}, "", ""},
		{"unique twice", unique, "stdout,file,stdout", nil, "listed twice", "stdout"},
		{"cidr", cidrs, "10.1.0.0/22,192.168.0.0/16", []string{"10.1.0.0/22", "192.168.0.0/16"}, "", ""},
		{"cidr bits", cidrs, "10.1.0.0/33", nil, "want an IPv4 network", "10.1.0.0/33"},
		{"cidr octet", cidrs, "10.256.0.0/16", nil, "want an IPv4 network", "10.256.0.0/16"},
		{"cidr leading zero", cidrs, "10.01.0.0/16", nil, "want an IPv4 network", "10.01.0.0/16"},
		{"ipv4", addr, "192.168.1.1", "192.168.1.1", "", ""},
		{"ipv4 mapped", addr, "::ffff:192.168.1.1", "::ffff:192.168.1.1", "", ""},
		{"ipv6", addr, "2001:db8::1", nil, "want an IPv4 address", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.k.Parse(tc.raw)
			if tc.why == "" {
				if err != nil || !reflect.DeepEqual(v, tc.want) {
					t.Fatalf("Parse(%#v) = %#v, %v; want %#v", tc.raw, v, err, tc.want)
				}
				return
			}
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Why != tc.why || ve.Value != tc.bad {
				t.Fatalf("Parse(%#v) = %#v, %#v; want value %q refused with %q", tc.raw, v, err, tc.bad, tc.why)
			}
		})
	}
}

func TestCheckTyped(t *testing.T) {
	retries := Key{Name: "retries", Kind: Int, Min: "0", Max: "100"}
	if err := retries.Check(1000); err == nil || err.Error() != "want 0..100" {
		t.Errorf("Check(1000) = %v", err)
	}
	port := Key{Name: "p", Kind: Port}
	if err := port.Check(uint16(0)); err == nil {
		t.Error("port 0 accepted")
	}
	if err := retries.Check("3"); err == nil {
		t.Error("a string accepted for an Int key")
	}
}

func TestTitle(t *testing.T) {
	if got := (Key{Group: Discovery}).Title(); got != "Discovery" {
		t.Errorf("Title = %q", got)
	}
	if got := (Key{Group: Run, Category: "Consul sink"}).Title(); got != "Consul sink" {
		t.Errorf("Title = %q", got)
	}
}
