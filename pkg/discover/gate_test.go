package discover

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestProbeGateCheck: every payload and source verdict, plaintext and
// encrypted, with nothing charged.
func TestProbeGateCheck(t *testing.T) {
	key := mustKey(t, specKey)
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherKey := mustKey(t, other)
	now := time.Unix(1_700_000_000, 0)
	msg := []byte("DISCOVER_SERVER")
	nets := func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("10.213.1.0/24")} }
	lan := "10.213.1.20:40000"
	tests := []struct {
		name    string
		key     *Key
		payload []byte
		src     string
		want    ProbeVerdict
		refusal ProbeRefusal
	}{
		{"plaintext probe", nil, msg, lan, ProbeAdmitted, 0},
		{"plaintext, another message", nil, []byte("DISCOVER_SERVERS"), lan, ProbeBadPayload, 0},
		{"plaintext, empty", nil, nil, lan, ProbeBadPayload, 0},
		{"plaintext, a token", nil, key.Seal(msg, now), lan, ProbeBadPayload, 0},
		{"plaintext, broadcast source", nil, msg, "10.213.1.255:40000", ProbeSourceRefused, RefusedNetworkBroadcast},
		{"plaintext, network source", nil, msg, "10.213.1.0:40000", ProbeSourceRefused, RefusedNetworkAddress},
		{"plaintext, multicast source", nil, msg, "224.0.0.1:40000", ProbeSourceRefused, RefusedMulticast},
		{"garbage from a refused source is not a probe", nil, []byte("hello"), "255.255.255.255:1", ProbeBadPayload, 0},

		{"encrypted probe", key, key.Seal(msg, now), lan, ProbeAdmitted, 0},
		{"encrypted, trailing newline", key, append(key.Seal(msg, now), '\n'), lan, ProbeAdmitted, 0},
		{"encrypted, plaintext probe", key, msg, lan, ProbeBadPayload, 0},
		{"encrypted, garbage", key, []byte(strings.Repeat("A", 100)), lan, ProbeBadPayload, 0},
		{"encrypted, wrong key", key, otherKey.Seal(msg, now), lan, ProbeWrongKey, 0},
		{"encrypted, wrong inner message", key, key.Seal([]byte("DISCOVER_CLIENT"), now), lan, ProbeBadPayload, 0},
		{"encrypted, replayed after max age + skew", key, key.Seal(msg, now.Add(-DefaultMaxTokenAge-DefaultClockSkew-time.Second)), lan, ProbeTokenAge, 0},
		{"encrypted, at max age + skew", key, key.Seal(msg, now.Add(-DefaultMaxTokenAge-DefaultClockSkew)), lan, ProbeAdmitted, 0},
		{"encrypted, from the future", key, key.Seal(msg, now.Add(DefaultClockSkew+time.Second)), lan, ProbeTokenAge, 0},
		{"encrypted, port 0 source", key, key.Seal(msg, now), "10.213.1.20:0", ProbeSourceRefused, RefusedPortZero},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewProbeGate(ProbeGateConfig{Message: msg, Key: tc.key, Rate: 1, Burst: 1, Networks: nets})
			if err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddrPort(tc.src)
			got, why := g.Check(tc.payload, src, now)
			if got != tc.want || (got == ProbeSourceRefused && why != tc.refusal) {
				t.Fatalf("Check = %v, %v; want %v, %v", got, why, tc.want, tc.refusal)
			}
			// Check charges nothing: the source's one token is still there.
			if got == ProbeAdmitted {
				if v := g.Charge(src.Addr(), 1, now); v != ProbeAdmitted {
					t.Errorf("Charge after Check = %v, want admitted", v)
				}
			}
		})
	}
}

// TestProbeGateCharge: per-source buckets in probes or in replies, the
// global budget in replies, all or nothing, and neither budget spent for
// a probe the other refuses.
func TestProbeGateCharge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	type charge struct {
		at      time.Duration
		src     netip.Addr
		replies int
		want    ProbeVerdict
	}
	tests := []struct {
		name    string
		cfg     ProbeGateConfig
		charges []charge
	}{
		{"per probe: the burst, then the rate", ProbeGateConfig{Rate: 1, Burst: 2}, []charge{
			{0, a, 8, ProbeAdmitted}, {0, a, 8, ProbeAdmitted}, {0, a, 1, ProbeOverRate},
			{0, b, 1, ProbeAdmitted}, // another source has its own bucket
			{999 * time.Millisecond, a, 1, ProbeOverRate},
			{time.Second, a, 1, ProbeAdmitted},
		}},
		{"per reply: a probe costs its replies", ProbeGateConfig{Rate: 4, Burst: 8, RatePerReply: true}, []charge{
			{0, a, 5, ProbeAdmitted}, {0, a, 4, ProbeOverRate}, {0, a, 3, ProbeAdmitted},
			{time.Second, a, 4, ProbeAdmitted}, {time.Second, a, 1, ProbeOverRate},
		}},
		{"per reply: above the burst never", ProbeGateConfig{Rate: 4, Burst: 8, RatePerReply: true}, []charge{
			{0, a, 9, ProbeOverRate}, {time.Hour, a, 9, ProbeOverRate}, {time.Hour, a, 8, ProbeAdmitted},
		}},
		{"global: counts replies", ProbeGateConfig{GlobalRate: 10, GlobalBurst: 10}, []charge{
			{0, a, 6, ProbeAdmitted}, {0, b, 5, ProbeOverGlobalRate}, {0, b, 4, ProbeAdmitted},
			{100 * time.Millisecond, a, 1, ProbeAdmitted}, {100 * time.Millisecond, a, 1, ProbeOverGlobalRate},
		}},
		{"over its rate, a source spends no budget", ProbeGateConfig{Rate: 1, Burst: 1, GlobalRate: 1, GlobalBurst: 2}, []charge{
			{0, a, 1, ProbeAdmitted}, {0, a, 1, ProbeOverRate}, {0, a, 1, ProbeOverRate},
			{0, b, 1, ProbeAdmitted}, // the budget's second reply is still there
		}},
		{"over the budget, a probe costs its source nothing", ProbeGateConfig{Rate: 0.001, Burst: 1, GlobalRate: 1, GlobalBurst: 1}, []charge{
			{0, b, 1, ProbeAdmitted}, {0, a, 1, ProbeOverGlobalRate},
			{time.Second, a, 1, ProbeAdmitted}, // a's only token was left in its bucket
		}},
		{"no limits", ProbeGateConfig{}, []charge{
			{0, a, 1000, ProbeAdmitted}, {0, a, 1000, ProbeAdmitted},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Message = []byte("DISCOVER_SERVER")
			g, err := NewProbeGate(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tc.charges {
				if got := g.Charge(c.src, c.replies, now.Add(c.at)); got != c.want {
					t.Errorf("charge %d (%s, %d replies at +%s) = %v, want %v", i, c.src, c.replies, c.at, got, c.want)
				}
			}
		})
	}
}

// TestProbeGateAdmit: Admit checks before it charges; a refused probe
// costs nothing.
func TestProbeGateAdmit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g, err := NewProbeGate(ProbeGateConfig{Message: []byte("DISCOVER_SERVER"), Rate: 1, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("10.0.0.1:40000")
	if v, _ := g.Admit([]byte("nope"), src, 1, now); v != ProbeBadPayload {
		t.Fatalf("garbage: %v, want bad_payload", v)
	}
	if v, _ := g.Admit([]byte("DISCOVER_SERVER"), src, 1, now); v != ProbeAdmitted {
		t.Fatalf("first probe: %v, want admitted (the garbage cost nothing)", v)
	}
	if v, _ := g.Admit([]byte("DISCOVER_SERVER"), src, 1, now); v != ProbeOverRate {
		t.Fatalf("second probe: %v, want rate", v)
	}
}

func TestNewProbeGateErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ProbeGateConfig
		want []string
	}{
		{"no message", ProbeGateConfig{}, []string{"message must not be empty"}},
		{"global rate without burst", ProbeGateConfig{Message: []byte("m"), GlobalRate: 5}, []string{"global burst 0 with global rate 5"}},
		{"both", ProbeGateConfig{GlobalRate: 5}, []string{"message must not be empty", "global burst 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewProbeGate(tc.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestProbeVerdictNames(t *testing.T) {
	seen := map[string]bool{}
	for v := range numProbeVerdicts {
		s := v.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "verdict(") {
			t.Errorf("ProbeVerdict %d has name %q (duplicate or unnamed)", v, s)
		}
		seen[s] = true
	}
}

// TestAppendReply: the reply as a stock server writes it, read back by
// ParseReply.
func TestAppendReply(t *testing.T) {
	tests := []struct {
		ip   string
		port uint16
		want string
	}{
		{"10.213.1.11", 0, "SERVER_IP:10.213.1.11"},
		{"10.213.1.11", 8000, "SERVER_IP:10.213.1.11:8000"},
		{"255.255.255.254", 65535, "SERVER_IP:255.255.255.254:65535"},
		{"::ffff:1.2.3.4", 0, "SERVER_IP:1.2.3.4"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.ip)
			got := AppendReply([]byte("x"), []byte("SERVER_IP:"), ip, tc.port)
			if string(got) != "x"+tc.want {
				t.Fatalf("AppendReply = %q, want %q", got, "x"+tc.want)
			}
			pip, port, hasPort, ok := ParseReply(got[1:], []byte("SERVER_IP:"))
			if !ok || pip != ip.Unmap() || port != tc.port || hasPort != (tc.port != 0) {
				t.Errorf("ParseReply(%q) = %v, %d, %v, %v", got[1:], pip, port, hasPort, ok)
			}
		})
	}
}
