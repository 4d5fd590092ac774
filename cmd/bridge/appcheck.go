package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// consulCheckKeys are the Consul sink's deprecated check keys and the app
// check keys each one folds into.
var consulCheckKeys = []struct{ old, new string }{
	{"consul_check", "app_check"},
	{"consul_check_interval", "app_check_interval"},
	{"consul_http_path", "app_check_path"},
}

// foldConsulCheck folds the Consul sink's deprecated check keys into the
// app check, which every sink follows (the Consul sink no longer asks
// Consul to run a check of its own):
//   - consul_check set (tcp or http) while app_check is none: app_check
//     takes its value; while app_check is the same kind, nothing changes;
//     while app_check is another kind, the configuration is refused,
//     naming both keys;
//   - consul_check_interval and consul_http_path, when set, give
//     app_check_interval and app_check_path their values, unless those
//     hold a value other than their default (the new key wins);
//   - without consul_check the other two change nothing, as before.
//
// Folded values go through the new keys' bounds, and the app check's rules
// are checked again. It returns the old keys it folded (nil when none),
// for the one deprecation warning, or an *config.Error (exit 2).
func foldConsulCheck(cfg *config.Config) ([]string, error) {
	cc, ok := cfg.SinkSettings("consul").(consul.Config)
	if !ok || cfg.Source("consul_check") == "default" || cc.Check == consulclient.CheckNone {
		return nil, nil
	}
	origin := func(key string) string { return key + " (" + cfg.Source(key) + ")" }
	kind := appcheck.Kind(cc.Check)
	if cfg.AppCheck.Enabled() && cfg.AppCheck.Kind != kind {
		return nil, &config.Error{Problems: []error{fmt.Errorf("%s is %s but %s is %s: consul_check is deprecated and folded into app_check; set app_check only",
			origin("consul_check"), cc.Check, origin("app_check"), cfg.AppCheck.Kind)}}
	}
	folded := []string{"consul_check"}
	if !cfg.AppCheck.Enabled() {
		cfg.AppCheck.Kind = kind
		cfg.Fold("app_check", "consul_check")
	}
	var problems []error
	fold := func(old, new, value string, isDefault bool) {
		if cfg.Source(old) == "default" || !isDefault {
			return
		}
		v, err := appKey(new).Parse(value)
		if err == nil {
			err = cfg.AppCheck.Set(new, v)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: bad value %q: folded into %s: %w", origin(old), value, new, err))
			return
		}
		cfg.Fold(new, old)
		folded = append(folded, old)
	}
	fold("consul_check_interval", "app_check_interval", config.FormatDuration(cc.CheckInterval), cfg.AppCheck.Interval == appcheck.DefaultInterval)
	fold("consul_http_path", "app_check_path", cc.HTTPPath, cfg.AppCheck.Path == appcheck.DefaultPath)
	if len(problems) == 0 {
		if err := cfg.ValidateAppCheck(); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, &config.Error{Problems: problems}
	}
	return folded, nil
}

// appKey returns the app check key name (one of consulCheckKeys' new
// keys).
func appKey(name string) config.Key {
	keys := appcheck.Keys()
	return keys[slices.IndexFunc(keys, func(k config.Key) bool { return k.Name == name })]
}

// foldDeprecated folds the deprecated keys of cfg (foldConsulCheck) and
// logs one warning naming the old keys and the new ones; a conflict is a
// usage error (exit 2).
func foldDeprecated(c *cli.Context, cfg *config.Config) error {
	folded, err := foldConsulCheck(cfg)
	if err != nil {
		return usageErr(err)
	}
	if len(folded) == 0 {
		return nil
	}
	var news []string
	for _, k := range consulCheckKeys {
		if slices.Contains(folded, k.old) {
			news = append(news, k.new)
		}
	}
	log := newLogger(c, cfg)
	log.Warn().Strs("deprecated", folded).Strs("use", news).Str("app_check", string(cfg.AppCheck.Kind)).
		Msg(strings.Join(folded, ", ") + " are deprecated: folded into " + strings.Join(news, ", ") +
			", which every sink follows (README, \"What ready means\"); set those instead")
	return nil
}
