package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// ValidateLoop checks what only the sidecar loop (`bridge run`) needs: a
// round lasts up to timeout and rounds start every interval, so interval
// must exceed timeout. The error names both keys and their sources.
func (c *Config) ValidateLoop() error {
	if c.Interval > c.Discovery.Timeout {
		return nil
	}
	return &Error{Problems: []error{fmt.Errorf("%s %s must exceed %s %s: a round lasts up to timeout and rounds start every interval",
		c.origin("interval"), FormatDuration(c.Interval), c.origin("timeout"), FormatDuration(c.Discovery.Timeout))}}
}

// OneOf returns a *KeyError for key when v is not among allowed.
func OneOf(key, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return &KeyError{Key: key, Value: v, Why: "want one of " + strings.Join(allowed, ", ")}
}

// validate checks the rules of the core that span keys (each key's own
// bounds are checked by its parser). Problems are *KeyError where one
// key's value is at fault.
func (c *Config) validate() error {
	var errs []error
	if c.Encryption && c.SecretKey == "" && c.SecretKeyFile == "" {
		errs = append(errs, fmt.Errorf("%s: encryption is on but no secret key is set (secret_key, secret_key_file, %s)", c.origin("encryption_enabled"), orList(secretKeyEnv())))
	}
	if c.SecretKey != "" && c.SecretKeyFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s: set one, not both", c.origin("secret_key"), c.origin("secret_key_file")))
	}
	if c.PrometheusSD.Token != "" && c.PrometheusSD.TokenFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s: set one, not both", c.origin("prometheus_sd_token"), c.origin("prometheus_sd_token_file")))
	}
	if c.DebugEndpoint && c.MetricsAddr == "" {
		errs = append(errs, fmt.Errorf("%s: /debug/explain is served on metrics_addr, which is empty (disabled): set %s",
			c.origin("debug_endpoint"), c.origin("metrics_addr")))
	}
	if c.PrometheusSD.Enabled && c.PrometheusSD.Addr == "" && c.MetricsAddr == "" {
		errs = append(errs, fmt.Errorf("%s: %s is served on metrics_addr, which is empty (disabled): set %s or prometheus_sd_addr",
			c.origin("prometheus_sd"), PrometheusSDPath, c.origin("metrics_addr")))
	}
	errs = append(errs, c.validateRelay())
	return errors.Join(errs...)
}

// ValidateAppCheck checks the rules of the app check that span keys
// (appcheck.Options.Validate) on c.AppCheck, each problem with every app
// check key it names followed by its source: "app_check_timeout (flag
// --app-check-timeout) 3s must not exceed app_check_interval (default)
// 2s: ...". Load runs it; a caller that changes c.AppCheck after Load (the
// consul_check keys folded into it) runs it again.
func (c *Config) ValidateAppCheck() error {
	err := c.AppCheck.Validate()
	if err == nil {
		return nil
	}
	return c.AppCheckSources(err)
}

// AppCheckSources returns err (each error it joins) with every app check
// key its message names followed by the key's source, for errors of
// pkg/appcheck that name keys but cannot know where their values came
// from (appcheck.New: "app_check_ca_file (flag --app-check-ca-file)
// "/ca.pem": no such file"). Nil for nil.
func (c *Config) AppCheckSources(err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	for _, e := range unjoin(err) {
		errs = append(errs, errors.New(c.withSources(e.Error())))
	}
	return errors.Join(errs...)
}

// appCheckKey matches the names of app check keys in a message.
var appCheckKey = regexp.MustCompile(`\bapp_check[a-z_]*\b`)

// withSources follows each app check key named in msg with its source.
func (c *Config) withSources(msg string) string {
	return appCheckKey.ReplaceAllStringFunc(msg, func(name string) string {
		if _, known := c.sources[name]; !known {
			return name
		}
		return c.origin(name)
	})
}

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// origin formats "key (source)".
func (c *Config) origin(key string) string { return key + " (" + c.Source(key) + ")" }

// orList spells names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// FormatDuration spells d as a person writes it in a config file: "10s",
// "1m", "1h30m", "0.5s" (time.Duration.String without trailing zero units).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// secretKeyEnv lists the variables of secret_key (pkg/discover's keys).
func secretKeyEnv() []string {
	for _, k := range discover.Keys() {
		if k.Name == "secret_key" {
			return k.Env
		}
	}
	return nil
}
