package main

import (
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// keyFlags builds one flag per configuration key of the given groups. Values
// are parsed by internal/config (not by the flag library), so a bad value gets the
// same error, naming the key and its source, wherever it came from.
func keyFlags(schema *config.Schema, groups ...config.Group) []cli.Flag {
	var out []cli.Flag
	if !hasGroup(groups, config.GroupGlobal) {
		// A command that loads the configuration takes the global flags,
		// --config included, after its name too.
		out = append(out, keyFlags(schema, config.GroupGlobal)...)
		out = append(out, configFlag())
	}
	for _, k := range schema.Keys() {
		if !hasGroup(groups, k.Group) {
			continue
		}
		usage := k.Usage
		if len(k.Env) > 0 {
			usage += " [$" + k.Env[0] + "]"
		}
		cat := k.Title()
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

func hasGroup(groups []config.Group, g config.Group) bool { return slices.Contains(groups, g) }

func globalFlags(schema *config.Schema) []cli.Flag {
	return append(keyFlags(schema, config.GroupGlobal), configFlag())
}

// configFlag is --config, accepted before and after the subcommand name.
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config file (see bridge.example.yaml; before or after the subcommand)", EnvVars: []string{"BRIDGE_CONFIG"}, Category: "Global"}
}

// configPath returns --config from the innermost command on which it was
// set (or BRIDGE_CONFIG), "" for none.
func configPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc != nil && slices.ContainsFunc(cc.LocalFlagNames(), func(n string) bool { return n == "config" || n == "c" }) {
			return cc.String("config")
		}
	}
	return os.Getenv("BRIDGE_CONFIG")
}

// setValue returns the value of k's flag from the innermost command on
// which the user set it (global flags such as --log-level are accepted
// before and after the subcommand name), and false when it was not set.
func setValue(c *cli.Context, k config.Key) (any, bool) {
	names := append([]string{k.Flag}, k.Aliases...)
	for _, cc := range c.Lineage() {
		if cc == nil || !slices.ContainsFunc(cc.LocalFlagNames(), func(n string) bool { return slices.Contains(names, n) }) {
			continue
		}
		switch k.Kind {
		case config.KindList:
			return cc.StringSlice(k.Flag), true
		case config.KindBool:
			return strconv.FormatBool(cc.Bool(k.Flag)), true
		default:
			return cc.String(k.Flag), true
		}
	}
	return nil, false
}

// loadConfig gathers the flags the user set on c (and its parents) and loads
// the layered configuration.
func loadConfig(c *cli.Context, schema *config.Schema) (*config.Config, error) {
	set := map[string]any{}
	for _, k := range schema.Keys() {
		if v, ok := setValue(c, k); ok {
			set[k.Name] = v
		}
	}
	type loaded struct {
		cfg *config.Config
		err error
	}
	// Loading does not watch the context (a config file on a FIFO or a
	// stalled network mount blocks in read): a signal ends the command at
	// once and the loading goroutine dies with the process.
	done := make(chan loaded, 1)
	go func() {
		cfg, err := schema.Load(config.Inputs{File: configPath(c), LookupEnv: os.LookupEnv, Flags: set})
		done <- loaded{cfg, err}
	}()
	select {
	case l := <-done:
		if l.err != nil {
			return nil, usageErr(l.err)
		}
		return l.cfg, nil
	case <-c.Context.Done():
		return nil, interrupted(c.Context)
	}
}

// newLogger builds the stderr logger from the configuration.
func newLogger(c *cli.Context, cfg *config.Config) zerolog.Logger {
	return buildLogger(c.App.ErrWriter, cfg.LogLevel, cfg.LogFormat)
}

// flagLogger builds the logger for commands that take no configuration
// keys but the global log flags (and their BRIDGE_LOG_* variables).
func flagLogger(c *cli.Context, schema *config.Schema) zerolog.Logger {
	values := map[string]string{}
	for _, k := range schema.Keys() {
		if k.Group != config.GroupGlobal {
			continue
		}
		values[k.Name] = k.Default
		if v, ok := os.LookupEnv(k.Env[0]); ok {
			values[k.Name] = v
		}
		if v, ok := setValue(c, k); ok {
			values[k.Name] = v.(string)
		}
	}
	return buildLogger(c.App.ErrWriter, values["log_level"], values["log_format"])
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

// loadRunConfig is loadConfig plus the rules of the sidecar loop (interval
// above timeout) and the deprecated keys folded into their successors
// (foldDeprecated): what `bridge run` and `bridge config check` accept.
func loadRunConfig(c *cli.Context, schema *config.Schema) (*config.Config, error) {
	cfg, err := loadConfig(c, schema)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateLoop(); err != nil {
		return nil, usageErr(err)
	}
	if err := foldDeprecated(c, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}
