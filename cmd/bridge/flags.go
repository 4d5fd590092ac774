package main

import (
	"io"
	"os"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/pkg/config"
)

// keyFlags builds one flag per configuration key of the given groups. Values
// are parsed by pkg/config (not by the flag library), so a bad value gets the
// same error, naming the key and its source, wherever it came from.
func keyFlags(groups ...config.Group) []cli.Flag {
	var out []cli.Flag
	for _, k := range config.Keys() {
		if !hasGroup(groups, k.Group) {
			continue
		}
		usage := k.Usage
		if len(k.Env) > 0 {
			usage += " [$" + k.Env[0] + "]"
		}
		cat := category(k.Group)
		switch k.Kind {
		case config.KindBool:
			def, _ := strconv.ParseBool(k.Default)
			out = append(out, &cli.BoolFlag{Name: k.Flag, Aliases: k.Aliases, Usage: usage, Value: def, Category: cat})
		case config.KindList:
			out = append(out, &cli.StringSliceFlag{Name: k.Flag, Aliases: k.Aliases, Usage: usage, Category: cat, DefaultText: k.Default})
		default:
			f := &cli.StringFlag{Name: k.Flag, Aliases: k.Aliases, Usage: usage, Value: k.Default, Category: cat}
			if k.Secret {
				f.Value, f.DefaultText = "", "none"
			}
			out = append(out, f)
		}
	}
	return out
}

func hasGroup(groups []config.Group, g config.Group) bool {
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

func category(g config.Group) string {
	switch g {
	case config.GroupDiscovery:
		return "Discovery"
	case config.GroupRun:
		return "Sidecar"
	case config.GroupConsul:
		return "Consul sink"
	}
	return "Global"
}

func globalFlags() []cli.Flag {
	return append(keyFlags(config.GroupGlobal),
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config file (see bridge.example.yaml)", EnvVars: []string{"BRIDGE_CONFIG"}, Category: "Global"},
	)
}

// loadConfig gathers the flags the user set on c (and its parents) and loads
// the layered configuration.
func loadConfig(c *cli.Context) (*config.Config, error) {
	set := map[string]any{}
	for _, k := range config.Keys() {
		if !c.IsSet(k.Flag) {
			continue
		}
		switch k.Kind {
		case config.KindList:
			set[k.Name] = c.StringSlice(k.Flag)
		case config.KindBool:
			set[k.Name] = strconv.FormatBool(c.Bool(k.Flag))
		default:
			set[k.Name] = c.String(k.Flag)
		}
	}
	cfg, err := config.Load(config.Inputs{File: c.String("config"), LookupEnv: os.LookupEnv, Flags: set})
	if err != nil {
		return nil, usageErr(err)
	}
	return cfg, nil
}

// newLogger builds the stderr logger from the configuration.
func newLogger(c *cli.Context, cfg *config.Config) zerolog.Logger {
	return buildLogger(c.App.ErrWriter, cfg.LogLevel, cfg.LogFormat)
}

// flagLogger builds the logger for commands that take no configuration
// keys but the global log flags (and their BRIDGE_LOG_* variables).
func flagLogger(c *cli.Context) zerolog.Logger {
	level, format := c.String("log-level"), c.String("log-format")
	if v, ok := os.LookupEnv("BRIDGE_LOG_LEVEL"); ok && !c.IsSet("log-level") {
		level = v
	}
	if v, ok := os.LookupEnv("BRIDGE_LOG_FORMAT"); ok && !c.IsSet("log-format") {
		format = v
	}
	return buildLogger(c.App.ErrWriter, level, format)
}

func buildLogger(w io.Writer, level, format string) zerolog.Logger {
	var log zerolog.Logger
	if format == "json" {
		log = zerolog.New(w)
	} else {
		noColor := true
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				noColor = false
			}
		}
		log = zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: noColor, TimeFormat: "15:04:05.000"})
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return log.Level(lvl).With().Timestamp().Logger()
}
