package config

import (
	"errors"
	"fmt"
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
	if c.PrometheusSD.Enabled && c.PrometheusSD.Addr == "" && c.MetricsAddr == "" {
		errs = append(errs, fmt.Errorf("%s: %s is served on metrics_addr, which is empty (disabled): set %s or prometheus_sd_addr",
			c.origin("prometheus_sd"), PrometheusSDPath, c.origin("metrics_addr")))
	}
	return errors.Join(errs...)
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
