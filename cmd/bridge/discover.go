package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/config"
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
			if c.Bool("json") {
				err = printServersJSON(c.App.Writer, res.Servers)
			} else {
				err = printServersTable(c.App.Writer, res.Servers)
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
	opts, err := discoverOptions(cfg)
	if err != nil {
		return nil, usageErr(err)
	}
	opts.One = one
	lister := iface.OS()
	if all, err := lister.Interfaces(); err == nil {
		for _, name := range iface.Unmatched(all, cfg.Whitelist) {
			log.Warn().Str("interface", name).Msg("interfaces_whitelist names an interface this host does not have")
		}
		for _, name := range iface.Unmatched(all, cfg.Blacklist) {
			log.Warn().Str("interface", name).Msg("interfaces_blacklist names an interface this host does not have")
		}
	}
	client, err := discover.New(opts, lister, log, clock.Real())
	if err != nil {
		return nil, usageErr(err)
	}
	return client, nil
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
