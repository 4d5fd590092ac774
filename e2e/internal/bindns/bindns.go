// Package bindns runs BIND (Debian's bind9: named) for end-to-end tests: the
// primary of one zone that accepts RFC 2136 dynamic updates and zone
// transfers signed with a TSIG key, inside a network namespace the test
// created, with its configuration, zone file and journal in a temporary
// directory of the test. Dig runs the real dig against it.
//
// named runs in the foreground (-g: logs on stderr), as root (no -u: the
// files are the test's), IPv4 only, without its rndc control channel and
// without recursion. Where an AppArmor profile for /usr/sbin/named is
// enforced it confines named to /etc/bind and /var/cache/bind: Start then
// fails with named's own "permission denied" in the error; CI's machines
// (containers) have no AppArmor.
package bindns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// KeyAlgorithm is the TSIG algorithm of the key Start makes: the one
// external-dns's --rfc2136-tsig-secret-alg names hmac-sha256.
const KeyAlgorithm = "hmac-sha256"

// Options configure Start. The zero value serves lab.test. on port 53.
type Options struct {
	Zone    string // the zone, with or without the final dot (default "lab.test")
	Port    int    // the port named listens on, UDP and TCP (default 53)
	KeyName string // the TSIG key's name (default "udb-lab")
}

// Server is a running named.
type Server struct {
	Addr      netip.AddrPort // where it listens
	Zone      string         // the zone it is primary for, without the final dot
	KeyName   string         // the TSIG key allowed to update and transfer the zone
	KeySecret string         // the key's secret, base64 (32 random bytes)
	Dir       string         // its configuration, zone file, journal, pid file
	Proc      *netns.Proc
}

// Require skips the test when named or dig is missing (failing it instead
// when CI is "true", as netns.Require does). scripts/test.sh installs them
// (Debian's bind9 and dnsutils).
func Require(t testing.TB) {
	t.Helper()
	netns.Require(t)
	netns.RequireTool(t, "named")
	netns.RequireTool(t, "dig")
}

// Start writes the configuration and zone of a primary for opts.Zone (an SOA,
// an NS record naming ns.<zone>, and ns.<zone> A ip) into a temporary
// directory and starts named on h, listening on ip:opts.Port, ip being one
// of h's addresses. The zone accepts updates of any name in it
// (update-policy { grant <key> zonesub ANY; }) and transfers, both only
// signed with the key; queries from anyone. It returns once named answers
// the zone's SOA. A cleanup stops named by its PID (SIGTERM, then SIGKILL)
// and, when the test failed, logs the tail of its log.
func Start(t testing.TB, h *netns.Host, ip string, opts Options) *Server {
	t.Helper()
	Require(t)
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		t.Fatalf("bindns: %q is not an IPv4 address: %v", ip, err)
	}
	if opts.Zone == "" {
		opts.Zone = "lab.test"
	}
	if opts.Port == 0 {
		opts.Port = 53
	}
	if opts.KeyName == "" {
		opts.KeyName = "udb-lab"
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Addr:      netip.AddrPortFrom(addr, uint16(opts.Port)),
		Zone:      strings.TrimSuffix(opts.Zone, "."),
		KeyName:   opts.KeyName,
		KeySecret: base64.StdEncoding.EncodeToString(secret),
		Dir:       t.TempDir(),
	}
	conf := filepath.Join(s.Dir, "named.conf")
	zoneFile := filepath.Join(s.Dir, s.Zone+".zone")
	if err := os.WriteFile(conf, []byte(s.config(zoneFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zoneFile, []byte(s.zone()), 0o644); err != nil {
		t.Fatal(err)
	}
	named, _ := exec.LookPath("named")
	if named == "" {
		named = "/usr/sbin/named"
	}
	p, err := h.Start(context.Background(), named, "-g", "-4", "-c", conf)
	if err != nil {
		t.Fatal(err)
	}
	s.Proc = p
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			_, stderr := p.Output()
			t.Logf("named (exit %d), last lines:\n%s", p.ExitCode(), harness.Tail(stderr, 30))
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		recs, err := s.Dig(ctx, h, s.Zone, "SOA")
		if err == nil && len(recs) == 1 {
			return s
		}
		if p.Exited() {
			_, stderr := p.Output()
			t.Fatalf("bindns: named exited (%d) before answering:\n%s", p.ExitCode(), harness.Tail(stderr, 30))
		}
		select {
		case <-ctx.Done():
			_, stderr := p.Output()
			t.Fatalf("bindns: named does not answer the SOA of %s at %s (last: %v %v):\n%s", s.Zone, s.Addr, recs, err, harness.Tail(stderr, 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// config is named.conf: everything under s.Dir, no control channel.
func (s *Server) config(zoneFile string) string {
	return fmt.Sprintf(`options {
	directory %[1]q;
	pid-file %[2]q;
	session-keyfile %[3]q;
	managed-keys-directory %[1]q;
	listen-on port %[4]d { %[5]s; };
	listen-on-v6 { none; };
	recursion no;
	allow-query { any; };
	dnssec-validation no;
	notify no;
};
controls { };
key %[6]q {
	algorithm %[7]s;
	secret %[8]q;
};
zone %[9]q {
	type primary;
	file %[10]q;
	allow-transfer { key %[6]q; };
	update-policy { grant %[6]s zonesub ANY; };
};
`, s.Dir, filepath.Join(s.Dir, "named.pid"), filepath.Join(s.Dir, "session.key"),
		s.Addr.Port(), s.Addr.Addr(), s.KeyName, KeyAlgorithm, s.KeySecret, s.Zone, zoneFile)
}

// zone is the zone file: SOA (1-minute timers), NS, the server's address.
func (s *Server) zone() string {
	return fmt.Sprintf(`$TTL 60
@	IN SOA	ns.%[1]s. hostmaster.%[1]s. ( 1 60 60 600 60 )
	IN NS	ns.%[1]s.
ns	IN A	%[2]s
`, s.Zone, s.Addr.Addr())
}

// TSIG is the key in dig's -y form, algorithm:name:secret.
func (s *Server) TSIG() string { return KeyAlgorithm + ":" + s.KeyName + ":" + s.KeySecret }

// Record is one resource record of an answer.
type Record struct {
	Name string // owner name, with the final dot
	TTL  int
	Type string // "A", "SRV", "TXT"...
	Data string // the RDATA as dig prints it ("10.213.200.31", "0 50 8000 s1.lab.test.")
}

func (r Record) String() string { return fmt.Sprintf("%s %d %s %s", r.Name, r.TTL, r.Type, r.Data) }

// Dig asks the server for name's records of qtype with the real dig (no
// recursion, one try of 2 s), run on from, or in the caller's (root)
// network namespace when from is nil, and returns the answer section. An
// NXDOMAIN or an empty answer is no records and no error.
func (s *Server) Dig(ctx context.Context, from *netns.Host, name, qtype string) ([]Record, error) {
	return Dig(ctx, from, s.Addr, name, qtype)
}

// Transfer is the whole zone by AXFR, signed with the key, as external-dns
// lists it (--rfc2136-axfr).
func (s *Server) Transfer(ctx context.Context, from *netns.Host) ([]Record, error) {
	return dig(ctx, from, s.Addr, "-y", s.TSIG(), s.Zone, "AXFR")
}

// Dig is Server.Dig for any server.
func Dig(ctx context.Context, from *netns.Host, server netip.AddrPort, name, qtype string) ([]Record, error) {
	return dig(ctx, from, server, name, qtype)
}

func dig(ctx context.Context, from *netns.Host, server netip.AddrPort, args ...string) ([]Record, error) {
	argv := append([]string{"dig", "@" + server.Addr().String(), "-p", strconv.Itoa(int(server.Port())),
		"+norecurse", "+tries=1", "+time=2", "+noall", "+answer", "+nocomments"}, args...)
	var stdout, stderr []byte
	var err error
	if from != nil {
		r := from.Run(ctx, argv...)
		stdout, stderr, err = []byte(r.Stdout), []byte(r.Stderr), r.Err
	} else {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		stdout, err = cmd.Output()
		stderr = eb.Bytes()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s%s", strings.Join(argv, " "), err, bytes.TrimSpace(stdout), bytes.TrimSpace(stderr))
	}
	return parse(string(stdout))
}

// parse reads dig's answer lines: name TTL class type data...
func parse(out string) ([]Record, error) {
	var recs []Record
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			if strings.Contains(line, "Transfer failed") || strings.Contains(line, "connection timed out") ||
				strings.Contains(line, "communications error") {
				return nil, fmt.Errorf("dig: %s", line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("dig: unexpected line %q", line)
		}
		ttl, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("dig: unexpected line %q", line)
		}
		recs = append(recs, Record{Name: f[0], TTL: ttl, Type: f[3], Data: strings.Join(f[4:], " ")})
	}
	return recs, nil
}

// Data returns the RDATA of the records of type qtype, sorted.
func Data(recs []Record, qtype string) []string {
	var out []string
	for _, r := range recs {
		if r.Type == qtype {
			out = append(out, r.Data)
		}
	}
	slices.Sort(out)
	return out
}
