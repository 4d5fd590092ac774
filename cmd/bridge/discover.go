package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func discoverCommand(schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "discover",
		Usage: "run one discovery round and print the servers found",
		Description: "Broadcasts the probe on every selected interface (plus unicast probes to --scan-cidr networks)\n" +
			"and collects replies until --timeout (a deadline for the whole round), the first reply with --one,\n" +
			"or --settle after the last probe. Exit status: 0 found, 1 none, 2 bad usage or configuration.",
		Flags: append(keyFlags(schema, config.GroupDiscovery),
			&cli.BoolFlag{Name: "one", Usage: "stop at the first valid reply"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array instead of a table"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c, schema)
			if err != nil {
				return err
			}
			log := newLogger(c, cfg)
			client, err := newClient(cfg, log, c.Bool("one"))
			if err != nil {
				return err
			}
			res, err := client.Round(c.Context)
			if ierr := interrupted(c.Context); ierr != nil {
				return ierr
			}
			if err != nil {
				return roundErr(err)
			}
			log.Debug().Interface("stats", res.Stats).Dur("duration", res.Duration).Msg("round finished")
			scan, scanned := newScanReport(cfg, res)
			if c.Bool("json") {
				err = printServersJSON(c.App.Writer, res.Servers)
				if scanned {
					// stdout stays the array of servers; the scan's
					// figures go to stderr as one JSON object.
					err = errors.Join(err, json.NewEncoder(c.App.ErrWriter).Encode(map[string]scanReport{"scan": scan}))
				}
			} else {
				err = printServersTable(c.App.Writer, res.Servers)
				if scanned {
					_, werr := fmt.Fprintln(c.App.Writer, scan.Message)
					err = errors.Join(err, werr)
				}
			}
			if err != nil {
				return runtimeErr(err)
			}
			if len(res.Servers) == 0 {
				return quietExit(exitNone)
			}
			return nil
		},
	}
}

// newClient builds a discovery client from the configuration; configuration
// problems are usage errors.
func newClient(cfg *config.Config, log zerolog.Logger, one bool) (*discover.Client, error) {
	opts, err := cfg.DiscoveryOptions()
	if err != nil {
		return nil, usageErr(err)
	}
	opts.One = one
	lister := iface.OS()
	if all, err := lister.Interfaces(); err == nil {
		for _, name := range iface.Unmatched(all, cfg.Discovery.Whitelist) {
			log.Warn().Str("interface", name).Msg("interfaces_whitelist names an interface this host does not have")
		}
		for _, name := range iface.Unmatched(all, cfg.Discovery.Blacklist) {
			log.Warn().Str("interface", name).Msg("interfaces_blacklist names an interface this host does not have")
		}
	}
	// The Client logs through slog; zerolog.NewSlogHandler writes each event
	// to log as typed fields (no JSON in between).
	client, err := discover.New(opts, lister, slog.New(zerolog.NewSlogHandler(log)), clock.Real())
	if err != nil {
		return nil, usageErr(err)
	}
	return client, nil
}

// logInterfaceChoice logs, once at start, the addresses the interface rules
// take (info, with the rule) and how many each rule skipped (info; each
// skipped address at debug). The rules are applied again every round.
func logInterfaceChoice(log zerolog.Logger, c *discover.Client) {
	ds, err := c.Decisions()
	if err != nil {
		log.Warn().Err(err).Msg("interfaces not listed")
		return
	}
	skipped := map[string]int{}
	for _, d := range ds {
		if d.Taken {
			log.Info().Str("interface", d.Name).Stringer("ip", d.Addr).Stringer("broadcast", d.Broadcast).
				Str("rule", d.Rule).Msg("probing interface")
			continue
		}
		skipped[d.Rule]++
		log.Debug().Str("interface", d.Name).Stringer("ip", d.Addr).Str("rule", d.Rule).Str("reason", d.Reason).Msg("interface skipped")
	}
	if len(skipped) > 0 {
		ev := log.Info()
		for _, rule := range slices.Sorted(maps.Keys(skipped)) {
			ev = ev.Int(rule, skipped[rule])
		}
		ev.Msg("interface addresses skipped, by rule (bridge interfaces lists them)")
	}
}

// roundErr maps a failed round: no interface selected is a configuration
// matter the user must fix (exit 2); anything else is a runtime failure.
func roundErr(err error) error {
	if errors.Is(err, discover.ErrNoInterfaces) {
		return usageErr(err)
	}
	return runtimeErr(err)
}

func printServersJSON(w io.Writer, servers []discover.Server) error {
	if servers == nil {
		servers = []discover.Server{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(servers)
}

func printServersTable(w io.Writer, servers []discover.Server) error {
	if len(servers) == 0 {
		_, err := fmt.Fprintln(w, "no servers found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tPORT\tSOURCE\tINTERFACE\tADDRESS FROM\tREPLY")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%q\n", s.IP, s.Port, s.Source, s.Interface, s.AddressFrom, s.Raw)
	}
	return tw.Flush()
}

// scanReport is what the subnet scan of a one-shot round covered.
type scanReport struct {
	CIDRs       []string `json:"cidrs"`
	Hosts       int      `json:"hosts"`
	Scanned     int      `json:"scanned"`
	Percent     float64  `json:"percent"`
	Seconds     float64  `json:"seconds"`      // the round's duration
	Rate        int      `json:"rate"`         // --scan-rate
	RateReached float64  `json:"rate_reached"` // probes per second while scanning
	OnLinkRate  float64  `json:"onlink_rate,omitempty"`
	Complete    bool     `json:"complete"`
	Message     string   `json:"message"`
}

// newScanReport describes the scan of res; ok is false when the round
// scanned nothing (no --scan-cidr, or the scan disabled).
func newScanReport(cfg *config.Config, res discover.Result) (scanReport, bool) {
	st := res.Stats
	if st.ScanHosts == 0 {
		return scanReport{}, false
	}
	r := scanReport{
		Hosts: st.ScanHosts, Scanned: min(st.ScanCovered, st.ScanHosts),
		Seconds: res.Duration.Seconds(), Rate: st.ScanRate, OnLinkRate: st.ScanOnLinkRate,
		Complete: st.ScanCovered >= st.ScanHosts,
	}
	for _, p := range cfg.Discovery.ScanCIDRs {
		r.CIDRs = append(r.CIDRs, p.String())
	}
	r.Percent = math.Round(1000*float64(r.Scanned)/float64(r.Hosts)) / 10
	if st.ScanSeconds > 0 {
		r.RateReached = math.Round(float64(st.ScanTargets+st.ScanKeepAlives) / st.ScanSeconds)
	}
	took := strconv.FormatFloat(math.Round(r.Seconds*10)/10, 'f', -1, 64) + " s"
	if r.Complete {
		r.Message = fmt.Sprintf("scanned all %s hosts of %s in %s", thousands(r.Hosts), strings.Join(r.CIDRs, ", "), took)
		return r, true
	}
	r.Message = fmt.Sprintf("scanned %s of %s hosts (%.1f%%) in %s; raise --timeout or --scan-rate, or narrow --scan-cidr",
		thousands(r.Scanned), thousands(r.Hosts), r.Percent, took)
	if r.OnLinkRate > 0 {
		r.Message += fmt.Sprintf(" (hosts on a directly connected network are resolved with ARP and paced at %.1f/s to spare the neighbour table; broadcast already reaches them)", r.OnLinkRate)
	}
	return r, true
}

// thousands formats n with comma separators: 65534 -> "65,534".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
