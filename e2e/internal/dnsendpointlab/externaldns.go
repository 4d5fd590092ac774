package dnsendpointlab

// The external-dns process: its arguments, start, stop, log and
// synchronisation metrics.

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bindns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/externaldnsbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// ExternalDNS is one external-dns process.
type ExternalDNS struct {
	// Args are its arguments, verbatim, as the docs quote them (the TSIG
	// secret is the test's random one).
	Args []string
	PID  int
	// MetricsURL is its /metrics (--metrics-address on 127.0.0.1).
	MetricsURL string

	cmd  *exec.Cmd
	done chan struct{}
	log  string // its output (stdout and stderr)
}

// Args returns the external-dns arguments for the kubeconfig kc and srv
// that Options ask for.
func Args(kc string, srv *bindns.Server, opts Options, metricsPort int) []string {
	if opts.Interval == 0 {
		opts.Interval = 5 * time.Second
	}
	if len(opts.RecordTypes) == 0 {
		opts.RecordTypes = []string{"A", "SRV"}
	}
	if opts.OwnerID == "" {
		opts.OwnerID = "udb-lab"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	args := []string{
		"--kubeconfig=" + kc,
		"--source=crd",
		"--crd-source-apiversion=externaldns.k8s.io/v1alpha1",
		"--crd-source-kind=DNSEndpoint",
	}
	if opts.LabelFilter != "" {
		args = append(args, "--label-filter="+opts.LabelFilter)
	}
	for _, rt := range opts.RecordTypes {
		args = append(args, "--managed-record-types="+rt)
	}
	args = append(args,
		"--provider=rfc2136",
		"--rfc2136-host="+srv.Addr.Addr().String(),
		"--rfc2136-port="+strconv.Itoa(int(srv.Addr.Port())),
		"--rfc2136-zone="+srv.Zone,
		"--rfc2136-tsig-keyname="+srv.KeyName,
		"--rfc2136-tsig-secret="+srv.KeySecret,
		"--rfc2136-tsig-secret-alg="+bindns.KeyAlgorithm,
		"--rfc2136-axfr",
		"--domain-filter="+srv.Zone,
		"--registry=txt",
		"--txt-owner-id="+opts.OwnerID,
		"--policy=sync",
		"--interval="+opts.Interval.String(),
	)
	if opts.Events {
		args = append(args, "--events")
	}
	return append(args,
		"--metrics-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"--log-level="+opts.LogLevel,
	)
}

// StartExternalDNS starts external-dns on the machine (Args), reading the
// DNSEndpoints of every namespace through its crd source as kubeconfig kc
// says (the CRD must be installed: InstallCRD, or the chart with
// dnsEndpoint.installCRD=true)
// and publishing them to srv with its RFC 2136 provider, the TXT registry
// and policy sync. A cleanup stops it by its PID (SIGTERM, then SIGKILL)
// and, when the test failed, logs the tail of its log.
func StartExternalDNS(t testing.TB, kc string, srv *bindns.Server, opts Options) *ExternalDNS {
	t.Helper()
	port := harness.FreePort(t)
	e := &ExternalDNS{
		Args:       Args(kc, srv, opts, port),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics",
		done:       make(chan struct{}),
	}
	logPath := filepath.Join(t.TempDir(), "external-dns.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	e.log = logPath
	e.cmd = exec.Command(externaldnsbin.Path(t), e.Args...)
	e.cmd.Stdout, e.cmd.Stderr = f, f
	if err := e.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start external-dns: %v", err)
	}
	f.Close()
	e.PID = e.cmd.Process.Pid
	go func() {
		_ = e.cmd.Wait()
		close(e.done)
	}()
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("external-dns %v, last lines:\n%s", e.Args, harness.Tail(e.Log(), 40))
		}
	})
	return e
}

// Stop stops external-dns (SIGTERM by its PID, SIGKILL after 5 s) and waits
// for it. It may be called more than once.
func (e *ExternalDNS) Stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM) // pidfd-backed: never a reused PID
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

// Exited reports whether external-dns has exited.
func (e *ExternalDNS) Exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Log is what external-dns has written so far.
func (e *ExternalDNS) Log() string {
	b, _ := os.ReadFile(e.log)
	return string(b)
}

// Syncs reads external-dns's metrics: when its last synchronisation
// started (external_dns_controller_last_reconcile_timestamp_seconds) and
// when its last successful one finished (..._last_sync_timestamp_seconds);
// zero times before the first.
func (e *ExternalDNS) Syncs(ctx context.Context) (started, finished time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.MetricsURL, nil)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	at := func(name string) (time.Time, error) {
		v, ok, err := harness.MetricIn(string(body), name)
		if err != nil || !ok || v == 0 {
			return time.Time{}, err
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if started, err = at("external_dns_controller_last_reconcile_timestamp_seconds"); err != nil {
		return time.Time{}, time.Time{}, err
	}
	finished, err = at("external_dns_controller_last_sync_timestamp_seconds")
	return started, finished, err
}

// WaitSyncAfter waits (harness.Wait, timeout) until external-dns has
// finished a synchronisation that started after since, and returns when it
// finished: what BIND answers then is what external-dns made of the
// DNSEndpoints as its informer cache held them after since (a watch event
// behind the API server).
func (e *ExternalDNS) WaitSyncAfter(t testing.TB, timeout time.Duration, since time.Time) time.Time {
	t.Helper()
	var started, finished time.Time
	harness.Wait(t, timeout, "an external-dns sync after "+since.Format(time.RFC3339Nano), func() (bool, string) {
		if e.Exited() {
			t.Fatalf("external-dns exited:\n%s", harness.Tail(e.Log(), 30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		started, finished, err = e.Syncs(ctx)
		return err == nil && started.After(since) && !finished.Before(started),
			fmt.Sprint("last sync started ", started, ", finished ", finished, " ", err)
	})
	return finished
}
