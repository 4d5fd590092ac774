package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func doctorCommand(reg *sink.Registry, schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check interfaces, run one discovery round and say what to try when nothing is found; check the servers' apps and the sinks' access",
		Description: "With --app-check tcp, http or https doctor checks each server the round found once, as `bridge run` would, and\n" +
			"prints one line per server with the check's output. A failing app check is the server's problem, not the bridge's:\n" +
			"it is reported and changes the exit code only when servers were found and none passes (exit 1, as when none is\n" +
			"found: no server would be ready in any sink).\n" +
			"With the run's sink settings (--sink consul and the consul_* keys) doctor also tries each Consul operation the\n" +
			"mode needs and prints, for each one Consul refuses, the exact ACL rule to add. It changes nothing the bridge does not\n" +
			"own: catalog writes are sent in transactions that roll back; it creates and destroys a session on the fleet's node and\n" +
			"writes and deletes <consul_kv_prefix>/doctor/<bridge_id>. Exit 4 when a sink operation is refused or fails.",
		Flags: keyFlags(schema, config.GroupDiscovery, config.GroupRun),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c, schema)
			if err != nil {
				return err
			}
			if err := foldDeprecated(c, cfg); err != nil {
				return err
			}
			var checker *appcheck.Checker
			if cfg.AppCheck.Enabled() {
				if checker, err = appcheck.New(cfg.AppCheck); err != nil {
					return usageErr(cfg.AppCheckSources(err))
				}
			}
			log := newLogger(c, cfg)
			w := c.App.Writer
			all, ds, err := interfaceDecisions(cfg)
			if err != nil {
				return err
			}
			sel := iface.Taken(ds)
			fmt.Fprintln(w, "== interfaces")
			printInterfaceVerdicts(w, all, ds, cfg)
			for _, s := range iface.Diagnose(sel) {
				if scanCovers(cfg, s.Network) == "" {
					fmt.Fprintf(w, "\nsegmented network? %s\n", s.Advice())
					continue
				}
				fmt.Fprintf(w, "\nsegmented network? Interface %s (%s) is on %s, but a broadcast from this host usually reaches only %s, one of %d /24 segments; "+
					"--scan-cidr %s probes the other segments by unicast (what it covered is below).\n",
					s.Interface, s.IP, s.Network, s.LikelyBroadcastDomain, s.Segments, scanCovers(cfg, s.Network))
			}

			fmt.Fprintf(w, "\n== discovery round (port %d, timeout %s, retries %d, encryption %v)\n", cfg.Discovery.Port, cfg.Discovery.Timeout, cfg.Discovery.Retries, cfg.Encryption)
			client, err := newClient(cfg, log, false)
			if err != nil {
				return err
			}
			res, roundErr := client.Round(c.Context)
			if err := interrupted(c.Context); err != nil {
				return err
			}
			if roundErr != nil {
				fmt.Fprintf(w, "round failed: %v\n", roundErr)
			} else {
				st := res.Stats
				fmt.Fprintf(w, "probes sent %d (send errors %d), replies %d: valid %d, duplicate %d, invalid %d, oversized %d, rejected %d, refused %d, dropped %d; kernel drops %d; took %s\n",
					st.ProbesSent, st.SendErrors, st.Replies, st.Valid, st.Duplicates, st.Invalid, st.Oversized, st.Rejected, st.Refused.Total(), st.Dropped, st.KernelDrops, res.Duration.Round(1e6))
				if scan, ok := newScanReport(cfg, res); ok {
					fmt.Fprintf(w, "subnet scan: %s\n", scan.Message)
				}
				if err := printServersTable(w, res.Servers); err != nil {
					return runtimeErr(err)
				}
			}
			appsFailing := false
			if checker != nil && roundErr == nil {
				passed, err := doctorAppCheck(c.Context, w, checker, res.Servers)
				if err != nil {
					return runtimeErr(err)
				}
				if err := interrupted(c.Context); err != nil {
					return err
				}
				appsFailing = passed == 0 && len(res.Servers) > 0
			}
			hints := doctorHints(cfg, sel, res, roundErr)
			if appsFailing {
				hints = append(hints, appCheckHint(cfg))
			}
			if len(hints) > 0 {
				fmt.Fprintln(w, "\n== what to try")
				for _, h := range hints {
					fmt.Fprintf(w, "- %s\n", h)
				}
			}
			fmt.Fprintf(w, "\n== sinks (%s)\n", strings.Join(cfg.Sinks, ", "))
			sinksOK, err := reg.Doctor(c.Context, cfg, w)
			if err != nil {
				return usageErr(err)
			}
			if err := interrupted(c.Context); err != nil {
				return err
			}
			if !sinksOK {
				return quietExit(exitInternal)
			}
			if roundErr != nil || len(res.Servers) == 0 || appsFailing {
				return quietExit(exitNone)
			}
			return nil
		},
	}
}

func printInterfaceVerdicts(w io.Writer, all []iface.Interface, ds []iface.Decision, cfg *config.Config) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIP\tNETWORK\tBROADCAST\tUSED")
	for _, d := range ds {
		verdict := "yes (" + d.Rule + ")"
		if !d.Taken {
			verdict = "no: " + d.Rule + ": " + d.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Addr, d.Prefix, d.Broadcast, verdict)
	}
	tw.Flush()
	for _, name := range iface.Unmatched(all, cfg.Discovery.Whitelist) {
		fmt.Fprintf(w, "whitelist names %q, which this host does not have (names are exact and case-sensitive)\n", name)
	}
	for _, name := range iface.Unmatched(all, cfg.Discovery.Blacklist) {
		fmt.Fprintf(w, "blacklist names %q, which this host does not have\n", name)
	}
}

// doctorHints says what to try, from what the round saw.
func doctorHints(cfg *config.Config, sel []iface.Interface, res discover.Result, roundErr error) []string {
	var h []string
	switch {
	case errors.Is(roundErr, discover.ErrNoInterfaces) || len(sel) == 0:
		h = append(h, "no interface is selected: check that the host has an IPv4 interface up, and the interface rules (interfaces_whitelist, interfaces_regex, interfaces_cidrs, interfaces_can_reach, ...): `bridge interfaces` says which rule skipped each one")
		return h
	case errors.Is(roundErr, discover.ErrNoProbeSent):
		h = append(h, "no probe could be sent: the selected links may be down or have no route for broadcast; in a container use --network host (Docker) or hostNetwork: true (Kubernetes)")
		return h
	case roundErr != nil:
		return append(h, "the round failed: run with --log-level debug for details")
	}
	st := res.Stats
	h = append(h, refusalHints(cfg, st.Refused)...)
	if len(res.Servers) > 0 {
		return h
	}
	if st.Rejected > 0 {
		h = append(h, fmt.Sprintf("%d encrypted replies were rejected: the secret key differs from the servers', or the clocks differ by more than clock_skew (%s)", st.Rejected, cfg.Discovery.ClockSkew))
	}
	if st.Invalid > 0 {
		h = append(h, fmt.Sprintf("%d replies did not parse: check response_prefix (now %q) against the servers' DISCOVERY_RESPONSE_PREFIX", st.Invalid, cfg.Discovery.Prefix))
	}
	scan, scanned := newScanReport(cfg, res)
	if scanned && !scan.Complete {
		need := math.Ceil(float64(scan.Hosts) / float64(max(scan.Rate, 1)))
		if scan.OnLinkRate > 0 && scan.OnLinkRate < float64(scan.Rate) {
			need = math.Ceil(float64(scan.Hosts) / scan.OnLinkRate)
		}
		h = append(h, fmt.Sprintf("the subnet scan covered only %s of %s hosts (%.1f%%): one pass over all of them needs about --timeout %.0f at this rate; "+
			"raise --scan-rate, narrow --scan-cidr to where the servers are, or let `bridge run` cover it over several rounds (it continues where each round stopped)",
			thousands(scan.Scanned), thousands(scan.Hosts), scan.Percent, need))
	}
	if st.Replies == 0 {
		h = append(h,
			fmt.Sprintf("no reply at all: is a server running with discovery on UDP port %d (discovery_port), and the same discovery_message (%q)?", cfg.Discovery.Port, cfg.Discovery.Message),
			"a firewall must let UDP to the servers' port out and the replies (to this host's ephemeral port) back in")
		switch {
		case !scanned:
			h = append(h, "broadcast reaches only this host's broadcast domain: for servers behind a router or in another VLAN use --scan-cidr NETWORK")
		case scan.Complete:
			h = append(h, fmt.Sprintf("every host of %s was probed and none answered: if servers are elsewhere, add their networks with --scan-cidr; if they are there, check their port and firewall", strings.Join(scan.CIDRs, ", ")))
		}
		if cfg.Encryption {
			h = append(h, "with encryption on, a server with another key (or with encryption off) ignores the probe without a word: check that both sides use the same key")
		} else {
			h = append(h, "servers with encryption enabled ignore plaintext probes: try --encryption with their key")
		}
		if cfg.Discovery.Timeout < 1e9 {
			h = append(h, "the timeout is under a second: try --timeout 5")
		}
	}
	return h
}

// refusalHints says, for each reason the admission policy refused replies
// for, what it likely means and what to try.
func refusalHints(cfg *config.Config, refused discover.RefusalCounts) []string {
	var h []string
	for _, r := range discover.Refusals() {
		n := refused[r]
		if n == 0 {
			continue
		}
		var why string
		switch r {
		case discover.RefusedForeign:
			why = "advertised addresses neither their source nor inside this host's networks or the scan CIDRs: a multi-homed server whose default route leaves by another network? " +
				"--advertised-addresses any admits them (upstream's behaviour); or add their network with --scan-cidr"
		case discover.RefusedOffLink:
			why = "came from sources off the network they arrived on and not probed by unicast: forged, or a server answering through a router (probe its network with --scan-cidr)"
		case discover.RefusedSourcePort:
			why = fmt.Sprintf("did not come from the discovery port %d, as every stock server's do: forged, or a NAT rewriting the port", cfg.Discovery.Port)
		case discover.RefusedUnroutable, discover.RefusedSubnetEdge:
			why = "advertised an address no registry should hold (loopback, link-local, multicast, 0/8, 240/4, a subnet's network or broadcast address): a misconfigured or forged server"
		case discover.RefusedSourceCap:
			why = fmt.Sprintf("were more than max_servers_per_source (%d) new servers from one source address: several servers behind one address (raise --max-servers-per-source), or a flood",
				cfg.Discovery.MaxServersPerSource)
		case discover.RefusedReplay:
			why = fmt.Sprintf("were encrypted replies stamped before the probe less clock_skew (%s): replayed, or a server whose clock is far behind", cfg.Discovery.ClockSkew)
		}
		h = append(h, fmt.Sprintf("%d replies refused (%s): they %s", n, r, why))
	}
	return h
}

// scanCovers returns the configured scan CIDRs that overlap network, joined
// for a message ("" when none does).
func scanCovers(cfg *config.Config, network netip.Prefix) string {
	if !cfg.Discovery.SubnetScan {
		return ""
	}
	var out []string
	for _, p := range cfg.Discovery.ScanCIDRs {
		if p.Overlaps(network) {
			out = append(out, p.String())
		}
	}
	return strings.Join(out, " --scan-cidr ")
}
