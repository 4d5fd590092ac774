package forge

import (
	"encoding/hex"

	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Datagram is one forged UDP datagram: any source, any destination.
type Datagram struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

// SendOptions repeat and pace a list of datagrams.
type SendOptions struct {
	Count int     // times the whole list is sent; 0 means 1
	Rate  float64 // datagrams per second; 0: as fast as the kernel takes them
}

// Send writes dgrams from h (Count times, at Rate) and returns the counts.
func Send(t testing.TB, h *netns.Host, o SendOptions, dgrams ...Datagram) Summary {
	t.Helper()
	if len(dgrams) == 0 {
		t.Fatalf("forge.Send: no datagram")
	}
	var args []string
	for _, d := range dgrams {
		args = append(args, "-d", d.Src.String()+" "+d.Dst.String()+" hex:"+hex.EncodeToString(d.Payload))
	}
	args = append(args, "-count", strconv.Itoa(max(o.Count, 1)), "-rate", ftoa(o.Rate))
	return Run(t, h, "send", args...)
}

// AnswerOptions configure sniff-and-answer: for each probe received on
// Listen from A:p, PerProbe forged replies go to A:p. Reply i (a counter
// that runs on across probes from Start) comes from Src[i] : SrcPorts[i]
// and carries Template with {ip} = IdentityIPs[i mod len],
// {port} = IdentityPorts[i / len(IdentityIPs)], so every probe gets fresh
// identities until the identity space (len(IdentityIPs) * len(IdentityPorts))
// wraps. Address lists are comma-separated addresses, ranges a-b and
// prefixes; port lists are ports and ranges a-b.
type AnswerOptions struct {
	Listen        string  // UDP address probes arrive on; default "0.0.0.0:9999"
	Match         []byte  // answer only probes equal to this; nil: any probe
	Src           string  // forged source addresses (required), e.g. "10.213.1.100-10.213.1.250"
	SrcPorts      string  // forged source ports; default "9999", as stock servers reply
	IdentityIPs   string  // addresses for {ip}; default Src (then {ip} is the source)
	IdentityPorts string  // ports for {port}; default "8000"
	Template      string  // reply text with {ip} {port} {src} {sport} {dport} {n}; default "SERVER_IP:{ip}:{port}"
	Payload       []byte  // a fixed reply (a captured or crafted token) instead of Template
	PerProbe      int     // replies per probe; 0 means 1
	Probes        int     // exit after this many probes; 0: until stopped
	Rate          float64 // replies per second within a burst; 0: as fast as possible
	Start         uint64  // first counter value
}

// Answer starts the sniff-and-answer attacker in h; Stop or Finish it.
func Answer(t testing.TB, h *netns.Host, o AnswerOptions) *Proc {
	t.Helper()
	args := []string{"-src", o.Src, "-per-probe", strconv.Itoa(max(o.PerProbe, 1)),
		"-probes", strconv.Itoa(o.Probes), "-rate", ftoa(o.Rate), "-start", strconv.FormatUint(o.Start, 10)}
	args = appendIf(args, "-listen", o.Listen)
	args = appendIf(args, "-sport", o.SrcPorts)
	args = appendIf(args, "-id-ips", o.IdentityIPs)
	args = appendIf(args, "-id-ports", o.IdentityPorts)
	if o.Match != nil {
		args = append(args, "-match", "hex:"+hex.EncodeToString(o.Match))
	}
	switch {
	case o.Payload != nil && o.Template != "":
		t.Fatalf("forge.Answer: set Template or Payload, not both")
	case o.Payload != nil:
		args = append(args, "-payload", "hex:"+hex.EncodeToString(o.Payload))
	case o.Template != "":
		args = append(args, "-payload", "text:"+o.Template)
	}
	return Start(t, h, "answer", args...)
}

// SprayOptions configure a blind spray: one forged reply to every port of
// Ports on Dst, without seeing a probe.
type SprayOptions struct {
	Src      netip.AddrPort // forged source
	Dst      netip.Addr     // the victim
	Ports    string         // destination ports; default "32768-60999" (Linux's ephemeral range)
	Template string         // payload text with {src} {sport} {dport} {n}
	Payload  []byte         // a fixed payload instead of Template
	Rate     float64        // datagrams per second; 0: as fast as possible
	Rounds   int            // passes over the range; 0 means 1
}

// Spray starts a spray in h; Wait for it, or Stop it, then read Summary.
func Spray(t testing.TB, h *netns.Host, o SprayOptions) *Proc {
	t.Helper()
	args := []string{"-src", o.Src.String(), "-dst", o.Dst.String(), "-rate", ftoa(o.Rate), "-rounds", strconv.Itoa(max(o.Rounds, 1))}
	args = appendIf(args, "-ports", o.Ports)
	switch {
	case (o.Payload != nil) == (o.Template != ""):
		t.Fatalf("forge.Spray: set exactly one of Template and Payload")
	case o.Payload != nil:
		args = append(args, "-payload", "hex:"+hex.EncodeToString(o.Payload))
	default:
		args = append(args, "-payload", "text:"+o.Template)
	}
	return Start(t, h, "spray", args...)
}

// ListenOptions configure a receiver that reports what arrives.
type ListenOptions struct {
	Addrs    []string      // UDP ip:port sockets to read (SO_REUSEADDR/PORT, SO_BROADCAST)
	Raw      bool          // also read every UDP datagram the host accepts, any port (raw socket)
	RawPorts string        // with Raw: count only these destination ports
	Quiet    bool          // no Recv events, only the Summary's counts
	Count    int64         // exit after this many datagrams; 0: until stopped
	Duration time.Duration // exit after this long; 0: until stopped
}

// Listen starts a receiver in h.
func Listen(t testing.TB, h *netns.Host, o ListenOptions) *Proc {
	t.Helper()
	var args []string
	for _, a := range o.Addrs {
		args = append(args, "-addr", a)
	}
	if o.Raw {
		args = append(args, "-raw")
	}
	args = appendIf(args, "-raw-ports", o.RawPorts)
	if o.Quiet {
		args = append(args, "-quiet")
	}
	args = append(args, "-count", strconv.FormatInt(o.Count, 10), "-duration", o.Duration.String())
	return Start(t, h, "listen", args...)
}

// ProbeOptions configure a client that probes like the bridge.
type ProbeOptions struct {
	To      netip.AddrPort // e.g. the LAN's broadcast address, port 9999
	From    string         // local ip:port; default "0.0.0.0:0" (an ephemeral port)
	Payload []byte         // default "DISCOVER_SERVER"
	Wait    time.Duration  // per round; default 1s
	Rounds  int            // default 1
}

// Probe runs rounds of probe-and-collect in h and returns them.
func Probe(t testing.TB, h *netns.Host, o ProbeOptions) ([]Round, Summary) {
	t.Helper()
	args := []string{"-to", o.To.String(), "-rounds", strconv.Itoa(max(o.Rounds, 1))}
	args = appendIf(args, "-from", o.From)
	if o.Payload != nil {
		args = append(args, "-payload", "hex:"+hex.EncodeToString(o.Payload))
	}
	if o.Wait > 0 {
		args = append(args, "-wait", o.Wait.String())
	}
	p := Start(t, h, "probe", args...)
	if err := p.Wait(); err != nil {
		_, errOut := p.Output()
		t.Fatalf("forge: probe: %v: %s", err, errOut)
	}
	rounds, err := p.Rounds()
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	s, err := p.Summary()
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return rounds, s
}

// AllocArgv is the argv of a process that allocates and touches mib MiB in
// steps of 4 MiB, prints {"event":"alloc","mib":n} after each, then holds
// the memory until SIGTERM (or hold, when positive). For memory cgroup tests.
func AllocArgv(t testing.TB, mib int, hold time.Duration) []string {
	t.Helper()
	return []string{Bin(t), "alloc", "-mib", strconv.Itoa(mib), "-hold", hold.String()}
}

func appendIf(args []string, flag, v string) []string {
	if v == "" {
		return args
	}
	return append(args, flag, v)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
