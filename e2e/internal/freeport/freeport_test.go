package freeport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestTakeIsDistinctBelowEphemeralAndBindable(t *testing.T) {
	lo, err := ephemeralLow("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Fatal(err)
	}
	ports, err := Take(16)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < floor || p >= lo {
			t.Errorf("port %d outside [%d, %d)", p, floor, lo)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d not bindable after Take: %v", p, err)
			continue
		}
		l.Close()
	}
}

func TestTakeSkipsBusyPorts(t *testing.T) {
	ports, err := Take(1)
	if err != nil {
		t.Fatal(err)
	}
	q := ports[0]
	l, err := net.Listen("tcp", ":"+strconv.Itoa(q))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A window of one busy port: nothing to hand out.
	if got, err := take(1, q, q+1); err == nil {
		t.Fatalf("take(1) of the busy port %d = %v, want an error", q, got)
	}
	// A window around the busy port: never the busy one.
	got, err := take(2, q-1, q+2)
	if err != nil {
		t.Skipf("ports next to %d are in use on this machine: %v", q, err)
	}
	for _, p := range got {
		if p == q {
			t.Fatalf("take returned port %d, which is in use", q)
		}
	}
}

func TestEphemeralLow(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		want    int
		wantErr bool
	}{
		{"32768\t60999\n", 32768, false},
		{"20000 30000", 20000, false},
		{"x 30000", 0, true},
		{"70000 80000", 0, true},
		{"32768", 0, true},
	} {
		p := filepath.Join(dir, "range")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ephemeralLow(p)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ephemeralLow(%q) = %d, %v; want %d, error %v", tc.content, got, err, tc.want, tc.wantErr)
		}
	}
	if got, err := ephemeralLow(filepath.Join(dir, "missing")); err != nil || got != 32768 {
		t.Errorf("missing file: %d, %v; want the kernel default 32768", got, err)
	}
}
