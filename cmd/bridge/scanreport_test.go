package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 65534: "65,534", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestScanReportAndDoctorHints(t *testing.T) {
	cfg := &config.Config{Discovery: discover.Options{SubnetScan: true, ScanCIDRs: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/16")}, Timeout: 5 * time.Second}}
	partial := discover.Result{Duration: 5 * time.Second, Stats: discover.Stats{
		ScanHosts: 65534, ScanCovered: 5000, ScanTargets: 5000, ScanSeconds: 5, ScanRate: 1000}}
	r, ok := newScanReport(cfg, partial)
	if !ok || r.Complete || r.Percent != 7.6 || r.RateReached != 1000 ||
		r.Message != "scanned 5,000 of 65,534 hosts (7.6%) in 5 s; raise --timeout or --scan-rate, or narrow --scan-cidr" {
		t.Errorf("partial report %+v", r)
	}
	sel := []iface.Interface{{Name: "eth0"}}
	hints := strings.Join(doctorHints(cfg, sel, partial, nil), "\n")
	if !strings.Contains(hints, "covered only 5,000 of 65,534 hosts (7.6%)") || !strings.Contains(hints, "--timeout 66") ||
		strings.Contains(hints, "use --scan-cidr NETWORK") {
		t.Errorf("hints after a partial scan:\n%s", hints)
	}

	full := discover.Result{Duration: 1200 * time.Millisecond, Stats: discover.Stats{ScanHosts: 1022, ScanCovered: 1022, ScanRate: 1000}}
	cfg.Discovery.ScanCIDRs = []netip.Prefix{netip.MustParsePrefix("10.213.4.0/22")}
	r, _ = newScanReport(cfg, full)
	if !r.Complete || r.Message != "scanned all 1,022 hosts of 10.213.4.0/22 in 1.2 s" {
		t.Errorf("full report %+v", r)
	}
	hints = strings.Join(doctorHints(cfg, sel, full, nil), "\n")
	if !strings.Contains(hints, "every host of 10.213.4.0/22 was probed") || strings.Contains(hints, "covered only") ||
		strings.Contains(hints, "use --scan-cidr NETWORK") {
		t.Errorf("hints after a full scan:\n%s", hints)
	}
	if got := scanCovers(cfg, netip.MustParsePrefix("10.213.0.0/16")); got != "10.213.4.0/22" {
		t.Errorf("scanCovers = %q", got)
	}
	if _, ok := newScanReport(cfg, discover.Result{}); ok {
		t.Error("a round without a scan reports one")
	}
}
