// Package netns builds small network topologies out of Linux network namespaces
// for end-to-end tests: switches (a Linux bridge in its own namespace), hosts (a
// namespace with one veth leg per switch) and routers (a host with ip_forward=1).
//
// Everything is driven through the iproute2 `ip` command and needs root. Every
// namespace and device name carries a random suffix that is unique per Lab, so
// parallel tests and leftovers of crashed runs never collide. Nothing is ever
// created in, attached to, or moved into the caller's (root) namespace: veth
// pairs are created inside a switch namespace and one end is moved straight into
// the host namespace. The one exception is HostBridge, asked for by name, for
// a process that must run on the host network (a `docker run --network host`
// container): its bridge device is in the root namespace, on a subnet the test
// chose, and the teardown deletes it.
//
// A Lab registers a t.Cleanup that kills every process still running in its
// namespaces (by PID) and deletes the namespaces, which removes their devices.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// nsPrefix starts every namespace name the package creates, so a stray one is
// easy to recognise (`ip netns list | grep ^ude-`).
const nsPrefix = "ude-"

// maxIfName is the longest Linux interface name (IFNAMSIZ-1).
const maxIfName = 15

// validName restricts logical names to what fits device and namespace names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// Lab owns a set of namespaces and the processes started in them. Create it with
// New; its setup methods (Bridge, Host, Router, AddLink, SetDefaultRoute) report
// failures with t.Fatalf and so must be called from the goroutine of the test
// that created the Lab.
type Lab struct {
	t      testing.TB
	ip     string // path of the ip binary
	suffix string

	mu         sync.Mutex
	namespaces []string   // in creation order
	rootDevs   []string   // devices created in the root namespace (HostBridge)
	rootRules  [][]string // commands that delete the root namespace's iptables rules (HostBridge)
	procs      []*Proc
	bridges    map[string]*Bridge
	hosts      map[string]*Host
	nextPort   int
}

// Bridge is an L2 segment: a Linux bridge device alone in its own namespace,
// or (HostBridge) in the root namespace.
type Bridge struct {
	Name string // logical name given to Lab.Bridge
	NS   string // namespace holding the bridge device; "" for the root namespace
	Dev  string // bridge device name inside NS
}

// in returns the `ip` arguments that run a command in b's namespace.
func (b *Bridge) in(args ...string) []string {
	if b.NS == "" {
		return args
	}
	return append([]string{"-n", b.NS}, args...)
}

// Link is one veth leg of a host, enslaved (peer side) to a Bridge.
type Link struct {
	Dev    string       // device name inside the host namespace
	Peer   string       // peer device name inside the bridge namespace
	Bridge *Bridge      // segment the link is plugged into
	Prefix netip.Prefix // host address with its prefix length, e.g. 10.213.1.10/24
}

// Host is a network namespace with one or more links. Env, when non-nil, is the
// complete environment of commands run on the host (nil inherits the test's).
type Host struct {
	Name string // logical name given to Lab.Host or Lab.Router
	NS   string // namespace name, usable with `ip netns exec`
	Env  []string

	lab   *Lab
	links []*Link
}

// Require skips the test when the lab cannot run here (not root, no `ip`), and
// fails it instead when the environment variable CI is "true", so a CI machine
// that is expected to run the e2e suite never passes by skipping it.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "network-namespace e2e tests need root (euid %d)", os.Geteuid())
	}
	if _, err := lookIP(); err != nil {
		SkipOrFail(t, "network-namespace e2e tests need iproute2's `ip`: %v", err)
	}
}

// RequireTool is Require for an extra command a test needs (iptables, nft...).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err != nil {
		SkipOrFail(t, "test needs %q in PATH or /usr/sbin, /sbin: %v", name, err)
	}
	return p
}

// SkipOrFail skips the test with the formatted reason, or fails it with the
// same reason when env CI is "true".
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, so not skipping: %s", msg)
	}
	t.Skip(msg)
}

// New returns an empty Lab with a fresh random suffix, after Require. The Lab's
// teardown is registered with t.Cleanup.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	ip, _ := lookIP()
	l := &Lab{
		t:       t,
		ip:      ip,
		suffix:  randomSuffix(t),
		bridges: map[string]*Bridge{},
		hosts:   map[string]*Host{},
	}
	t.Cleanup(l.teardown)
	return l
}

// Suffix is the random tag carried by every name of this Lab.
func (l *Lab) Suffix() string { return l.suffix }

// Namespaces lists the namespaces created so far, in creation order.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// Bridge creates a switch: a new namespace holding one bridge device that is up.
func (l *Lab) Bridge(name string) *Bridge {
	l.t.Helper()
	l.checkName(name)
	if _, dup := l.bridges[name]; dup {
		l.t.Fatalf("netns: bridge %q already exists", name)
	}
	b := &Bridge{Name: name, NS: l.nsName("sw" + name), Dev: l.devName("br", 0)}
	l.addNS(b.NS)
	l.ipCmd("-n", b.NS, "link", "add", b.Dev, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.ipCmd("-n", b.NS, "link", "set", b.Dev, "up")
	l.bridges[name] = b
	return b
}

// HostBridge creates a switch whose bridge device is in the caller's (root)
// namespace, addressed cidr (for example "10.213.200.1/24", with the subnet's
// broadcast address) and up, so that a process on the host network can
// broadcast to the hosts plugged into it and nowhere else: pin its interface
// whitelist to Dev. Choose a subnet no other route of the root namespace
// covers. The teardown deletes the device after the namespaces.
func (l *Lab) HostBridge(name, cidr string) *Bridge {
	l.t.Helper()
	l.checkName(name)
	if _, dup := l.bridges[name]; dup {
		l.t.Fatalf("netns: bridge %q already exists", name)
	}
	if pfx, err := netip.ParsePrefix(cidr); err != nil || !pfx.Addr().Is4() {
		l.t.Fatalf("netns: host bridge %s: address %q is not an IPv4 CIDR: %v", name, cidr, err)
	}
	b := &Bridge{Name: name, Dev: l.devName("hb", len(l.rootDevs))}
	l.ipCmd("link", "add", b.Dev, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.mu.Lock()
	l.rootDevs = append(l.rootDevs, b.Dev)
	l.mu.Unlock()
	l.ipCmd("addr", "add", cidr, "brd", "+", "dev", b.Dev)
	l.ipCmd("link", "set", b.Dev, "up")
	// Where br_netfilter is loaded (Docker loads it), frames between two
	// ports of a root-namespace bridge pass the root's FORWARD chain, whose
	// policy Docker sets to DROP: accept this bridge's own traffic. The
	// rule goes with the device.
	if ipt, err := lookPath("iptables"); err == nil {
		if out, err := exec.Command(ipt, "-I", "FORWARD", "1", "-i", b.Dev, "-o", b.Dev, "-j", "ACCEPT").CombinedOutput(); err != nil {
			l.t.Fatalf("netns: accept forwarding on %s: %v: %s", b.Dev, err, bytes.TrimSpace(out))
		}
		l.mu.Lock()
		l.rootRules = append(l.rootRules, []string{ipt, "-D", "FORWARD", "-i", b.Dev, "-o", b.Dev, "-j", "ACCEPT"})
		l.mu.Unlock()
	}
	l.bridges[name] = b
	return b
}

// HostSubnet returns a 10.213.x.0/24 (x in 200..249) that no address or
// route of the root namespace uses yet, for HostBridge.
func (l *Lab) HostSubnet() netip.Prefix {
	l.t.Helper()
	out, err := exec.Command(l.ip, "-4", "-o", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		l.t.Fatalf("netns: ip route show: %v: %s", err, bytes.TrimSpace(out))
	}
	var b [1]byte
	for range 50 {
		if _, err := rand.Read(b[:]); err != nil {
			l.t.Fatalf("netns: random subnet: %v", err)
		}
		x := 200 + int(b[0])%50
		if !strings.Contains(string(out), fmt.Sprintf("10.213.%d.", x)) {
			return netip.MustParsePrefix(fmt.Sprintf("10.213.%d.0/24", x))
		}
	}
	l.t.Fatalf("netns: no free 10.213.200-249.0/24 in the root namespace")
	return netip.Prefix{}
}

// Host creates a namespace named after name with lo up and one link on br
// addressed cidr (for example "10.213.1.10/24"). Add more legs with AddLink and
// a default route with SetDefaultRoute.
func (l *Lab) Host(name string, br *Bridge, cidr string) *Host {
	l.t.Helper()
	h := l.newHost(name)
	h.AddLink(br, cidr)
	return h
}

// Router creates a host with one leg per bridge (legs maps bridge to the
// router's address on it) and IPv4 forwarding enabled.
func (l *Lab) Router(name string, legs map[*Bridge]string) *Host {
	l.t.Helper()
	h := l.newHost(name)
	brs := make([]*Bridge, 0, len(legs))
	for b := range legs {
		brs = append(brs, b)
	}
	slices.SortFunc(brs, func(a, b *Bridge) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range brs {
		h.AddLink(b, legs[b])
	}
	if r := h.Run(context.Background(), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); r.Err != nil {
		l.t.Fatalf("netns: enable ip_forward in %s: %v\n%s", h.NS, r.Err, r.Stderr)
	}
	return h
}

func (l *Lab) newHost(name string) *Host {
	l.t.Helper()
	l.checkName(name)
	if _, dup := l.hosts[name]; dup {
		l.t.Fatalf("netns: host %q already exists", name)
	}
	h := &Host{Name: name, NS: l.nsName(name), lab: l}
	l.addNS(h.NS)
	l.ipCmd("-n", h.NS, "link", "set", "lo", "up")
	l.hosts[name] = h
	return h
}

// teardown kills the Lab's processes, then every process left in its
// namespaces (by PID), then deletes the namespaces, newest first.
func (l *Lab) teardown() {
	l.mu.Lock()
	procs := slices.Clone(l.procs)
	nss := slices.Clone(l.namespaces)
	rootDevs := slices.Clone(l.rootDevs)
	l.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, ns := range slices.Backward(nss) {
		out, err := exec.Command(l.ip, "netns", "pids", ns).Output()
		if err == nil {
			for f := range strings.FieldsSeq(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, ns := range slices.Backward(nss) {
		if out, err := exec.Command(l.ip, "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("netns: delete namespace %s: %v: %s", ns, err, bytes.TrimSpace(out))
		}
	}
	// Deleting a namespace deleted its veth ends and so their peers on the
	// root bridges; what is left is the bridges themselves.
	l.mu.Lock()
	rules := slices.Clone(l.rootRules)
	l.mu.Unlock()
	for _, r := range rules {
		if out, err := exec.Command(r[0], r[1:]...).CombinedOutput(); err != nil {
			l.t.Errorf("netns: %v: %v: %s", r, err, bytes.TrimSpace(out))
		}
	}
	for _, dev := range slices.Backward(rootDevs) {
		if out, err := exec.Command(l.ip, "link", "del", dev).CombinedOutput(); err != nil {
			l.t.Errorf("netns: delete device %s: %v: %s", dev, err, bytes.TrimSpace(out))
		}
	}
}

func (l *Lab) addNS(ns string) {
	l.t.Helper()
	l.ipCmd("netns", "add", ns)
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
}

func (l *Lab) ipCmd(args ...string) {
	l.t.Helper()
	out, err := exec.Command(l.ip, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

func (l *Lab) checkName(name string) {
	l.t.Helper()
	if !validName.MatchString(name) {
		l.t.Fatalf("netns: name %q must match %s", name, validName)
	}
}

func (l *Lab) nsName(name string) string { return nsPrefix + name + "-" + l.suffix }

// devName builds "<kind><n>-<suffix>", at most 15 characters.
func (l *Lab) devName(kind string, n int) string {
	d := kind + strconv.Itoa(n) + "-" + l.suffix
	if len(d) > maxIfName {
		l.t.Fatalf("netns: device name %q longer than %d", d, maxIfName)
	}
	return d
}

func randomSuffix(t testing.TB) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("netns: random suffix: %v", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func lookIP() (string, error) { return lookPath("ip") }

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}
