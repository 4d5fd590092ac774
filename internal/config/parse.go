package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/duration"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// parser reads typed values out of the merged layers with each key's own
// parser (setting.Key.Parse), collecting problems.
type parser struct {
	m        merged
	byName   map[string]Key
	problems []error
	failed   map[string]bool // keys whose value did not parse
}

// value returns the merged raw value of key and its source.
func (p *parser) value(key string) (any, string, bool) {
	if !p.m.k.Exists(key) {
		return nil, "", false
	}
	return p.m.k.Get(key), p.m.src[key], true
}

func (p *parser) source(key string) string {
	_, src, ok := p.value(key)
	if !ok || src == "" {
		return "default"
	}
	return src
}

// anyFailed reports whether the value of one of keys did not parse.
func (p *parser) anyFailed(keys []Key) bool {
	for _, k := range keys {
		if p.failed[k.Name] {
			return true
		}
	}
	return false
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

// typed returns key's value parsed as kind by the key's own parser, which
// also checks its bounds; ok is false (and the problem recorded) when the
// value is refused. The value shown in the message is the one written
// (one element for a list), trimmed.
func (p *parser) typed(key string, kind setting.Kind) (any, bool) {
	k := p.byName[key]
	k.Kind = kind
	raw, _, _ := p.value(key)
	v, err := k.Parse(raw)
	if err == nil {
		return v, true
	}
	p.refuse(key, raw, err)
	return nil, false
}

// refuse records err, a refusal of key's value raw.
func (p *parser) refuse(key string, raw any, err error) {
	var ve *setting.ValueError
	shown := raw
	if errors.As(err, &ve) && p.byName[key].Kind == KindList {
		shown = ve.Value
	} else if s, ok := raw.(string); ok {
		shown = strings.TrimSpace(s)
	} else if raw == nil {
		shown = ""
	}
	p.bad(key, shown, err.Error())
}

func (p *parser) str(key string) string {
	v, ok := p.typed(key, KindString)
	if !ok {
		return ""
	}
	return v.(string)
}

func (p *parser) integer(key string) int {
	v, ok := p.typed(key, KindInt)
	if !ok {
		return 0
	}
	return v.(int)
}

func (p *parser) float(key string) float64 {
	v, ok := p.typed(key, KindFloat)
	if !ok {
		return 0
	}
	return v.(float64)
}

func (p *parser) boolean(key string) bool {
	v, ok := p.typed(key, KindBool)
	if !ok {
		return false
	}
	return v.(bool)
}

func (p *parser) duration(key string) time.Duration {
	v, ok := p.typed(key, KindDuration)
	if !ok {
		return 0
	}
	return v.(time.Duration)
}

func (p *parser) list(key string) []string {
	v, ok := p.typed(key, KindList)
	if !ok {
		return nil
	}
	return v.([]string)
}

// ParseDuration parses seconds as a plain number ("5", "0.5", as the upstream
// client's timeout) or a Go duration ("500ms", "1m30s"); see internal/duration.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// fill reads every core key into c: the discovery keys into c.Discovery
// through pkg/discover's table (Options.Set), the Fernet key's source into
// c's own fields, the app check keys into c.AppCheck through pkg/appcheck's
// table (Options.Set).
func (p *parser) fill(c *Config) {
	c.LogLevel = p.str("log_level")
	c.LogFormat = p.str("log_format")
	c.Discovery = discover.DefaultOptions()
	for _, k := range discover.Keys() {
		v, ok := p.typed(k.Name, k.Kind)
		if !ok {
			continue
		}
		switch k.Name {
		case "encryption_enabled":
			c.Encryption = v.(bool)
		case "secret_key":
			c.SecretKey = v.(string)
		case "secret_key_file":
			c.SecretKeyFile = v.(string)
		default:
			if err := c.Discovery.Set(k.Name, v); err != nil {
				raw, _, _ := p.value(k.Name)
				p.refuse(k.Name, raw, err)
			}
		}
	}
	c.Interval = p.duration("interval")
	c.MissedRounds = p.integer("missed_rounds")
	c.MaxRemovalFraction = p.float("max_removal_fraction")
	c.RemovalGuardRounds = p.integer("removal_guard_rounds")
	c.RemovalGuardHeld = p.str("removal_guard_held")
	c.MaxServers = p.integer("max_servers")
	c.Segment = p.str("segment")
	c.OnExit = p.str("on_exit")
	c.Sinks = p.list("sinks")
	c.MetricsAddr = p.str("metrics_addr")
	c.DebugEndpoint = p.boolean("debug_endpoint")
	c.AppCheck = appcheck.DefaultOptions()
	for _, k := range appcheck.Keys() {
		v, ok := p.typed(k.Name, k.Kind)
		if !ok {
			continue
		}
		if err := c.AppCheck.Set(k.Name, v); err != nil {
			raw, _, _ := p.value(k.Name)
			p.refuse(k.Name, raw, err)
		}
	}
	c.PrometheusSD = PrometheusSD{Enabled: p.boolean("prometheus_sd"), Addr: p.str("prometheus_sd_addr"),
		Token: p.str("prometheus_sd_token"), TokenFile: p.str("prometheus_sd_token_file"), Targets: p.str("sd_targets")}
	p.fillRelay(c)
}

// bridgeID reads bridge_id and defaults it to the host name from hostname
// (nil: os.Hostname); a host name that cannot be read is reported against
// the key.
func (p *parser) bridgeID(hostname func() (string, error)) string {
	id := p.str("bridge_id")
	if id != "" {
		return id
	}
	if hostname == nil {
		hostname = os.Hostname
	}
	h, err := hostname()
	if err != nil {
		p.bad("bridge_id", "", "not set, and the host name to default it to is unknown: "+err.Error())
	}
	return h
}
