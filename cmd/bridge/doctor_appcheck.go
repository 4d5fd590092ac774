package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// doctorAppCheck checks each server the doctor's round found once with c
// (at most app_check_concurrency at a time), as `bridge run` would, and
// prints one line per server with the check's output. It returns how many
// passed.
func doctorAppCheck(ctx context.Context, w io.Writer, c *appcheck.Checker, servers []discover.Server) (int, error) {
	o := c.Options()
	what := string(o.Kind)
	if o.Kind != appcheck.TCP {
		what += " GET " + o.Path + ", status " + statusList(o.Status)
	}
	fmt.Fprintf(w, "\n== app check (%s, timeout %s; rise %d, fall %d, every %s in `bridge run`)\n", what, o.Timeout, o.Rise, o.Fall, o.Interval)
	if len(servers) == 0 {
		_, err := fmt.Fprintln(w, "no server to check")
		return 0, err
	}
	results := appcheck.CheckServers(ctx, c, servers)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tRESULT\tOUTPUT")
	passed := 0
	for i, r := range results {
		verdict := "fail"
		if r.OK {
			verdict, passed = "pass", passed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", netip.AddrPortFrom(servers[i].IP, servers[i].Port), verdict, r.Output)
	}
	if err := tw.Flush(); err != nil {
		return passed, err
	}
	_, err := fmt.Fprintf(w, "%d of %d servers pass: `bridge run` would call them ready after %d passing checks in a row; the others stay held, not ready\n",
		passed, len(servers), o.Rise)
	return passed, err
}

// statusList spells the passing statuses as app_check_status does.
func statusList(rs []appcheck.StatusRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// appCheckHint says what to try when servers answered discovery but none
// passed its app check.
func appCheckHint(cfg *config.Config) string {
	o := cfg.AppCheck
	h := fmt.Sprintf("no server passed its app check (app_check %s): it goes to the address and port each server announces (default_port %d when it announces none), "+
		"so that port must be the app's, and this host must reach it (a firewall, a listener on 127.0.0.1 only)", o.Kind, cfg.Discovery.DefaultPort)
	if o.Kind != appcheck.TCP {
		h += fmt.Sprintf("; check that GET %s answers a status in app_check_status (%s) within app_check_timeout (%s)", o.Path, statusList(o.Status), o.Timeout)
	}
	return h
}
