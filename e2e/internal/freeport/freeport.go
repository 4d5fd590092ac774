// Package freeport hands out listening ports for the processes the
// end-to-end tests start (Consul agents, the Kubernetes lab's apiserver,
// etcd and kubelet, published Docker ports).
//
// A port taken from the kernel with "listen on :0" comes from the ephemeral
// range (net.ipv4.ip_local_port_range), the same range the kernel draws the
// source port of every outgoing connection from. Between the moment the test
// closes its probe listener and the moment the child process binds the port,
// any connection on the machine (another test package's HTTP client, etcd's
// own clients) can take it: CI once failed with "kube-apiserver: bind:
// address already in use" that way. Ports handed out here lie below the
// ephemeral range, so only another explicit binder can race for them, and
// each is checked free for TCP and UDP on every address before it is handed
// out.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// floor is the lowest port handed out: well above the registered services
// a test machine may run (ssh, Docker's 2375/2376, databases).
const floor = 10000

// Take returns n distinct ports below the kernel's ephemeral range that are,
// at the moment of the call, free for TCP and UDP on all addresses.
func Take(n int) ([]int, error) {
	hi, err := ephemeralLow("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return nil, err
	}
	return take(n, floor, hi)
}

// take returns n distinct ports of [lo, hi) free for TCP and UDP.
func take(n, lo, hi int) ([]int, error) {
	if hi-lo < n {
		return nil, fmt.Errorf("freeport: ports %d-%d are too few for %d", lo, hi-1, n)
	}
	out := make([]int, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("freeport: %d of %d ports found free between %d and %d in %d tries", len(out), n, lo, hi-1, tries)
		}
		p := lo + rand.IntN(hi-lo)
		if !slices.Contains(out, p) && free(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// free reports whether p can be bound for TCP and UDP on all addresses.
func free(p int) bool {
	addr := ":" + strconv.Itoa(p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// ephemeralLow reads the first port of the kernel's ephemeral range; the
// kernel's default (32768) when the file cannot be read.
func ephemeralLow(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 32768, nil
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, fmt.Errorf("freeport: %s: want two ports, got %q", path, b)
	}
	lo, err := strconv.Atoi(fields[0])
	if err != nil || lo < 1 || lo > 65535 {
		return 0, fmt.Errorf("freeport: %s: bad first port %q", path, fields[0])
	}
	return lo, nil
}
