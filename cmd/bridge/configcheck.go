package main

import (
	"fmt"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// configCommand groups the commands about the configuration itself.
func configCommand(schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:        "config",
		Usage:       "work with the configuration (check)",
		Subcommands: []*cli.Command{configCheckCommand(schema)},
	}
}

// configCheckCommand loads and validates everything `bridge run` would
// take with the same flags, environment and file, and sends nothing: no
// probe, no registry request, no listening socket.
func configCheckCommand(schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate the configuration of `bridge run` (same flags, environment and --config file) without sending anything",
		Description: "Loads every key as `bridge run` does, applies the run's rules (the sinks' settings, interval above timeout,\n" +
			"the discovery options, the app check, the relay's source; with encryption on it reads and parses the Fernet key, with\n" +
			"app_check https the CA file), folds the deprecated consul_check keys into app_check (warning once), prints \"configuration ok\" and exits 0;\n" +
			"else prints every problem, naming the key, the value and its source, and exits 2. It sends no probe, contacts no\n" +
			"registry and opens no socket (sinks are not started), so it is safe anywhere, e.g. before a deploy or in CI.",
		Flags: keyFlags(schema, config.GroupDiscovery, config.GroupRun),
		Action: func(c *cli.Context) error {
			cfg, err := loadRunConfig(c, schema)
			if err != nil {
				return err
			}
			opts, err := cfg.DiscoveryOptions()
			if err != nil {
				return usageErr(err)
			}
			// discover.New validates the options and compiles the
			// interface rules; it lists the interfaces only when a round
			// runs, and has nothing to log here (nil: no logger).
			if _, err := discover.New(opts, iface.OS(), nil, clock.Real()); err != nil {
				return usageErr(err)
			}
			// planRelay resolves relay_source and builds its reader, as
			// `bridge run` does at start: no socket, no registry request.
			if _, err := planRelay(cfg, opts, clock.Real(), zerolog.Nop()); err != nil {
				return usageErr(err)
			}
			// appcheck.New reads app_check_ca_file, as `bridge run` does
			// at start.
			if cfg.AppCheck.Enabled() {
				if _, err := appcheck.New(cfg.AppCheck); err != nil {
					return usageErr(cfg.AppCheckSources(err))
				}
			}
			fmt.Fprintln(c.App.Writer, "configuration ok")
			return nil
		},
	}
}
