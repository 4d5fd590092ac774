package main

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// TestStartAppChecks: which of the scheduler and the one-shot probe
// `bridge run` hands the runner, by mode.
func TestStartAppChecks(t *testing.T) {
	on := []string{"DISCOVERY_CLIENT_APP_CHECK", "tcp"}
	for _, tc := range []struct {
		name             string
		env              []string
		once, dry        bool
		checker, probe   bool
		metricsOfChecker bool
	}{
		{name: "app_check none", env: nil},
		{name: "none with --once", env: nil, once: true},
		{name: "the loop", env: on, checker: true, metricsOfChecker: true},
		{name: "the loop with --dry-run", env: on, dry: true, checker: true, metricsOfChecker: true},
		{name: "--once", env: on, once: true, probe: true},
		{name: "--once --dry-run applies nothing, checks nothing", env: on, once: true, dry: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadTestConfig(t, tc.env...)
			reg := prometheus.NewRegistry()
			a, err := startAppChecks(context.Background(), cfg, tc.once, tc.dry, zerolog.Nop(), reg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.stop()
			if (a.checker != nil) != tc.checker || (a.probe != nil) != tc.probe {
				t.Errorf("checker %v, probe %v; want %v, %v", a.checker != nil, a.probe != nil, tc.checker, tc.probe)
			}
			mfs, _ := reg.Gather()
			if got := len(mfs) > 0; got != tc.metricsOfChecker {
				t.Errorf("metrics registered: %v, want %v", got, tc.metricsOfChecker)
			}
		})
	}
	cfg := loadTestConfig(t, "DISCOVERY_CLIENT_APP_CHECK", "https", "DISCOVERY_CLIENT_APP_CHECK_CA_FILE", "/nonexistent/ca.pem")
	_, err := startAppChecks(context.Background(), cfg, false, false, zerolog.Nop(), nil)
	if err == nil || !strings.Contains(err.Error(), "app_check_ca_file (env DISCOVERY_CLIENT_APP_CHECK_CA_FILE)") {
		t.Errorf("unreadable CA file: %v, want an error naming app_check_ca_file and its source", err)
	}
}

// TestOnceProbe: --once's verdict of one check: ready when it passed,
// failing when not, with the check's output and start.
func TestOnceProbe(t *testing.T) {
	serving, refused, c := tcpTargets(t)
	probe := onceProbe(c)
	if got := probe(context.Background(), serving); got.State != endpoint.Ready ||
		!strings.HasPrefix(got.Output, "TCP connect: ok") || got.Since.IsZero() {
		t.Errorf("serving: %+v, want ready with the output and when", got)
	}
	if got := probe(context.Background(), refused); got.State != endpoint.Failing || !strings.Contains(got.Output, "connection refused") {
		t.Errorf("refused: %+v, want failing with connection refused", got)
	}
}

// tcpTargets returns a loopback address where a listener accepts (and
// closes) connections, one where nothing listens (connection refused),
// and a tcp Checker with the default options.
func tcpTargets(t *testing.T) (serving, refused netip.AddrPort, c *appcheck.Checker) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused = netip.MustParseAddrPort(gone.Addr().String())
	gone.Close() // nothing listens there now: connection refused
	o := appcheck.DefaultOptions()
	o.Kind = appcheck.TCP
	c, err = appcheck.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(ln.Addr().String()), refused, c
}
