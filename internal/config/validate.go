package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// maxUDPPayload is the largest IPv4 UDP payload: a probe must fit one
// datagram (pkg/discover checks the encrypted form's size too).
const maxUDPPayload = 65507

// MinInterval is the floor of interval: a round a tenth of a second is
// already far more than any registry needs, and a shorter one only burns
// CPU and floods the LAN with broadcasts.
const MinInterval = 100 * time.Millisecond

// MaxTimeout is the ceiling of timeout, a deadline for a whole round.
// Replies come back within milliseconds; the longest legitimate round is a
// subnet scan of the most hosts allowed (65,536), 66 s at the default
// scan_rate and 10 minutes at about 110 probes/s. A longer deadline is a
// mistake (a unit: "600" is seconds) that would make one round hang.
const MaxTimeout = 10 * time.Minute

// ValidateLoop checks what only the sidecar loop (`bridge run`) needs: a
// round lasts up to timeout and rounds start every interval, so interval
// must exceed timeout. The error names both keys and their sources.
func (c *Config) ValidateLoop() error {
	if c.Interval > c.Timeout {
		return nil
	}
	return &Error{Problems: []error{fmt.Errorf("%s %s must exceed %s %s: a round lasts up to timeout and rounds start every interval",
		c.origin("interval"), FormatDuration(c.Interval), c.origin("timeout"), FormatDuration(c.Timeout))}}
}

// OneOf returns a *KeyError for key when v is not among allowed.
func OneOf(key, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return &KeyError{Key: key, Value: v, Why: "want one of " + strings.Join(allowed, ", ")}
}

// validate checks the rules of the core keys that span the typed values;
// sinkNames are the valid sinks. Problems are *KeyError where one key's
// value is at fault.
func (c *Config) validate(sinkNames []string) error {
	var errs []error
	bad := func(key string, v any, why string) { errs = append(errs, &KeyError{Key: key, Value: v, Why: why}) }
	errs = append(errs,
		OneOf("log_level", c.LogLevel, "debug", "info", "warn", "error"),
		OneOf("log_format", c.LogFormat, "console", "json"))
	switch {
	case c.Message == "":
		bad("discovery_message", c.Message, "must not be empty")
	case len(c.Message) > maxUDPPayload:
		bad("discovery_message", c.Message, fmt.Sprintf("must fit one UDP datagram (%d bytes), got %d bytes", maxUDPPayload, len(c.Message)))
	}
	if c.ResponsePrefix == "" {
		bad("response_prefix", c.ResponsePrefix, "must not be empty")
	}
	switch {
	case c.Timeout <= 0:
		bad("timeout", c.Timeout, "must be > 0")
	case c.Timeout > MaxTimeout:
		bad("timeout", c.Timeout, "at most "+FormatDuration(MaxTimeout)+" (a deadline for one round)")
	}
	if c.Retries < 0 || c.Retries > 100 {
		bad("retries", c.Retries, "want 0..100")
	}
	if c.ScanRate <= 0 {
		bad("scan_rate", c.ScanRate, "must be > 0")
	}
	for _, k := range []struct{ key, pattern string }{{"interfaces_regex", c.InterfaceRegex}, {"interfaces_skip_regex", c.InterfaceSkipRegex}} {
		if k.pattern == "" {
			continue
		}
		if _, err := iface.CompilePattern(k.pattern); err != nil {
			bad(k.key, k.pattern, "want an RE2 pattern matched against the whole interface name: "+err.Error())
		}
	}
	errs = append(errs, OneOf("address_from", c.AddressFrom, "auto", "payload", "source"))
	if c.Encryption && c.SecretKey == "" && c.SecretKeyFile == "" {
		errs = append(errs, fmt.Errorf("%s: encryption is on but no secret key is set (secret_key, secret_key_file, DISCOVERY_CLIENT_SECRET_KEY or DISCOVERY_SECRET_KEY)", c.origin("encryption_enabled")))
	}
	if c.SecretKey != "" && c.SecretKeyFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s: set one, not both", c.origin("secret_key"), c.origin("secret_key_file")))
	}
	if c.MaxTokenAge <= 0 {
		bad("max_token_age", c.MaxTokenAge, "must be > 0")
	}
	if c.ClockSkew < 0 {
		bad("clock_skew", c.ClockSkew, "must be >= 0")
	}
	if c.Settle < 0 {
		bad("settle", c.Settle, "must be >= 0")
	}
	if c.MaxReplies <= 0 {
		bad("max_replies", c.MaxReplies, "must be > 0")
	}
	if c.Interval < MinInterval {
		bad("interval", c.Interval, "at least "+FormatDuration(MinInterval))
	}
	if c.MissedRounds < 1 {
		bad("missed_rounds", c.MissedRounds, "must be >= 1")
	}
	if !(c.MaxRemovalFraction > 0 && c.MaxRemovalFraction <= 1) {
		bad("max_removal_fraction", c.MaxRemovalFraction, "want a fraction 0 < f <= 1 (1 turns the removal guard off)")
	}
	if c.RemovalGuardRounds < 0 {
		bad("removal_guard_rounds", c.RemovalGuardRounds, "must be >= 0 (0 turns the removal guard off)")
	}
	if len(c.Sinks) == 0 {
		bad("sinks", "", "at least one sink is needed: "+orList(sinkNames))
	}
	seen := map[string]bool{}
	for _, s := range c.Sinks {
		if seen[s] {
			bad("sinks", s, "listed twice")
		}
		seen[s] = true
		errs = append(errs, OneOf("sinks", s, sinkNames...))
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
