package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/duration"
)

// parser reads typed values out of the merged layers, collecting problems.
type parser struct {
	layers   []layer
	byName   map[string]Key
	problems []error
	failed   map[string]bool // keys whose value did not parse
}

// value returns the highest-priority raw value of key and its source.
func (p *parser) value(key string) (any, string, bool) {
	for i := len(p.layers) - 1; i >= 0; i-- {
		l := p.layers[i]
		if l.k.Exists(key) {
			src := l.src[key]
			if src == "" {
				src = l.name
			}
			return l.k.Get(key), src, true
		}
	}
	return nil, "", false
}

func (p *parser) source(key string) string {
	_, src, ok := p.value(key)
	if !ok {
		return "default"
	}
	return src
}

// origin formats "key (source)" for error messages.
func (p *parser) origin(key string) string { return key + " (" + p.source(key) + ")" }

// shown returns the value of key as the user wrote it, for messages, and
// false when the key already has a parse problem (so it is reported once).
func (p *parser) shown(key string) (string, bool) {
	if p.failed[key] {
		return "", false
	}
	if p.byName[key].Secret {
		return "[redacted]", true
	}
	v, _, _ := p.value(key)
	if v == nil {
		return `""`, true
	}
	return Shorten(fmt.Sprint(v)), true
}

func (p *parser) bad(key string, v any, why string) {
	p.failed[key] = true
	shown := Shorten(fmt.Sprint(v))
	if p.byName[key].Secret {
		shown = "[redacted]"
	}
	p.problems = append(p.problems, fmt.Errorf("%s: bad value %s: %s", p.origin(key), shown, why))
}

func (p *parser) str(key string) string {
	v, _, ok := p.value(key)
	if !ok || v == nil {
		return ""
	}
	switch t := v.(type) {
	case string:
		return t
	case []any, []string, map[string]any:
		p.bad(key, v, "want a single value")
		return ""
	default:
		return fmt.Sprint(t)
	}
}

func (p *parser) integer(key string) int {
	s := strings.TrimSpace(p.str(key))
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.bad(key, s, "want a whole number")
		return 0
	}
	return n
}

func (p *parser) float(key string) float64 {
	s := strings.TrimSpace(p.str(key))
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.bad(key, s, "want a decimal number such as 0.5")
		return 0
	}
	return f
}

func (p *parser) port(key string) uint16 {
	s := strings.TrimSpace(p.str(key))
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		p.bad(key, s, "want a port number 1..65535")
		return 0
	}
	return uint16(n)
}

func (p *parser) boolean(key string) bool {
	v, _, _ := p.value(key)
	if b, ok := v.(bool); ok {
		return b
	}
	s := strings.ToLower(strings.TrimSpace(p.str(key)))
	switch s {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off", "":
		return false
	}
	p.bad(key, s, "want true/false, 1/0, yes/no or on/off")
	return false
}

func (p *parser) duration(key string) time.Duration {
	s := strings.TrimSpace(p.str(key))
	d, err := ParseDuration(s)
	if err != nil {
		p.bad(key, s, err.Error())
	}
	return d
}

func (p *parser) list(key string) []string {
	v, _, ok := p.value(key)
	if !ok || v == nil {
		return nil
	}
	var raw []string
	switch t := v.(type) {
	case string:
		raw = strings.Split(t, ",")
	case []string:
		for _, s := range t {
			raw = append(raw, strings.Split(s, ",")...)
		}
	case []any:
		for _, e := range t {
			raw = append(raw, fmt.Sprint(e))
		}
	default:
		raw = []string{fmt.Sprint(t)}
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseDuration parses seconds as a plain number ("5", "0.5", as the upstream
// client's timeout) or a Go duration ("500ms", "1m30s"); see internal/duration.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

func (p *parser) fill(c *Config) {
	c.LogLevel = p.str("log_level")
	c.LogFormat = p.str("log_format")
	c.Port = p.port("discovery_port")
	c.Message = p.str("discovery_message")
	c.ResponsePrefix = p.str("response_prefix")
	c.Timeout = p.duration("timeout")
	c.Retries = p.integer("retries")
	c.EnableSubnetScan = p.boolean("enable_subnet_scan")
	for _, s := range p.list("scan_cidrs") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil || !pfx.Addr().Is4() {
			p.bad("scan_cidrs", s, "want an IPv4 network such as 10.1.0.0/22")
			continue
		}
		c.ScanCIDRs = append(c.ScanCIDRs, pfx.Masked())
	}
	c.ScanRate = p.integer("scan_rate")
	c.Whitelist = p.list("interfaces_whitelist")
	c.Blacklist = p.list("interfaces_blacklist")
	c.InterfaceRegex = p.str("interfaces_regex")
	for _, s := range p.list("interfaces_cidrs") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil || !pfx.Addr().Is4() {
			p.bad("interfaces_cidrs", s, "want an IPv4 network such as 192.168.0.0/16")
			continue
		}
		c.InterfaceCIDRs = append(c.InterfaceCIDRs, pfx.Masked())
	}
	if s := strings.TrimSpace(p.str("interfaces_can_reach")); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Unmap().Is4() {
			p.bad("interfaces_can_reach", s, "want an IPv4 address such as 192.168.1.1")
		} else {
			c.InterfaceCanReach = a.Unmap()
		}
	}
	c.InterfaceSkipRegex = p.str("interfaces_skip_regex")
	c.SkipContainerInterfaces = p.boolean("interfaces_skip_container")
	c.DefaultPort = p.port("default_port")
	c.AddressFrom = p.str("address_from")
	c.Encryption = p.boolean("encryption_enabled")
	c.SecretKey = p.str("secret_key")
	c.SecretKeyFile = p.str("secret_key_file")
	c.MaxTokenAge = p.duration("max_token_age")
	c.ClockSkew = p.duration("clock_skew")
	c.Settle = p.duration("settle")
	c.MaxReplies = p.integer("max_replies")
	c.Interval = p.duration("interval")
	c.MissedRounds = p.integer("missed_rounds")
	c.MaxRemovalFraction = p.float("max_removal_fraction")
	c.RemovalGuardRounds = p.integer("removal_guard_rounds")
	c.Sinks = p.list("sinks")
	c.MetricsAddr = p.str("metrics_addr")
}
