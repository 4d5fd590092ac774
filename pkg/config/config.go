// Package config loads the bridge's configuration from built-in defaults, an
// optional YAML file, the environment and command-line flags (in rising
// priority), layered with koanf, and validates it once, reporting every
// problem with the key, the bad value and where it came from.
//
// Packages never see koanf: they receive the typed Config (or options built
// from it).
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Inputs are the raw sources of configuration.
type Inputs struct {
	// File is the path of an optional YAML config file ("" for none).
	File string
	// LookupEnv reads the environment (os.LookupEnv in production).
	LookupEnv func(string) (string, bool)
	// Flags holds the flags the user set, by key name (Key.Name). List
	// values are []string; others are strings.
	Flags map[string]any
}

// Config is the whole, validated configuration.
type Config struct {
	LogLevel  string
	LogFormat string

	Port             uint16
	Message          string
	ResponsePrefix   string
	Timeout          time.Duration
	Retries          int
	EnableSubnetScan bool
	ScanCIDRs        []netip.Prefix
	ScanRate         int
	Whitelist        []string
	Blacklist        []string
	DefaultPort      uint16
	AddressFrom      string
	Encryption       bool
	SecretKey        string // never log
	SecretKeyFile    string
	MaxTokenAge      time.Duration
	ClockSkew        time.Duration
	Settle           time.Duration
	MaxReplies       int
	Interval         time.Duration
	MissedRounds     int
	Sinks            []string
	FilePath         string
	MetricsAddr      string
	BridgeID         string
	OnExit           string
	ConsulAddr       string
	ConsulToken      string // never log
	ConsulTokenFile  string
	ConsulSSL        bool
	ConsulCACert     string
	ConsulClientCert string
	ConsulClientKey  string
	ConsulTLSServer  string
	ConsulDatacenter string
	ConsulNamespace  string
	ConsulPartition  string
	ConsulService    string
	ConsulTags       []string
	ConsulTTL        time.Duration
	ConsulDeregAfter time.Duration
	ConsulCheck      string
	ConsulCheckEvery time.Duration
	ConsulResync     time.Duration
	ConsulLock       string
	ConsulLockTTL    time.Duration
	sources          map[string]string
}

// Source names where a key's effective value came from ("default",
// "flag --port", "env DISCOVERY_CLIENT_PORT", "file bridge.yaml").
func (c *Config) Source(key string) string { return c.sources[key] }

// Error collects every configuration problem found by Load.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

// Unwrap gives errors.Is/As access to each problem.
func (e *Error) Unwrap() []error { return e.Problems }

type layer struct {
	name string // "default", "file x.yaml", "env", "flag"
	k    *koanf.Koanf
	src  map[string]string // key -> precise source (env var / flag name)
}

// Load reads every layer, merges them (defaults < file < env < flags) and
// validates the result. The error, when not nil, is an *Error listing all
// problems.
func Load(in Inputs) (*Config, error) {
	keys := Keys()
	byName := make(map[string]Key, len(keys))
	for _, k := range keys {
		byName[k.Name] = k
	}
	var problems []error

	defaults := map[string]any{}
	for _, k := range keys {
		if k.Default != "" {
			defaults[k.Name] = k.Default
		}
	}
	layers := []layer{{name: "default", k: koanf.New("\x00"), src: map[string]string{}}}
	if err := layers[0].k.Load(confmap.Provider(defaults, ""), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}

	if in.File != "" {
		fl := layer{name: "file " + in.File, k: koanf.New("\x00"), src: map[string]string{}}
		if err := fl.k.Load(file.Provider(in.File), yaml.Parser()); err != nil {
			return nil, &Error{Problems: []error{fmt.Errorf("config file %s: %w", in.File, err)}}
		}
		for _, name := range fl.k.Keys() {
			if _, ok := byName[name]; !ok {
				problems = append(problems, fmt.Errorf("config file %s: unknown key %q", in.File, name))
			}
		}
		layers = append(layers, fl)
	}

	if in.LookupEnv != nil {
		el := layer{name: "env", k: koanf.New("\x00"), src: map[string]string{}}
		m := map[string]any{}
		for _, k := range keys {
			for _, env := range k.Env {
				if v, ok := in.LookupEnv(env); ok {
					m[k.Name] = v
					el.src[k.Name] = "env " + env
					break
				}
			}
		}
		if err := el.k.Load(confmap.Provider(m, ""), nil); err != nil {
			return nil, fmt.Errorf("load environment: %w", err)
		}
		layers = append(layers, el)
	}

	fl := layer{name: "flag", k: koanf.New("\x00"), src: map[string]string{}}
	fm := map[string]any{}
	for name, v := range in.Flags {
		k, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("internal: flag for unknown key %q", name)
		}
		fm[name] = v
		fl.src[name] = "flag --" + k.Flag
	}
	if err := fl.k.Load(confmap.Provider(fm, ""), nil); err != nil {
		return nil, fmt.Errorf("load flags: %w", err)
	}
	layers = append(layers, fl)

	p := parser{layers: layers, byName: byName, failed: map[string]bool{}}
	c := &Config{sources: map[string]string{}}
	for _, k := range keys {
		c.sources[k.Name] = p.source(k.Name)
	}
	p.fill(c)
	problems = append(problems, p.problems...)
	problems = append(problems, c.validate(p.origin, p.shown)...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return c, nil
}

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
	return fmt.Sprintf("%q", fmt.Sprint(v)), true
}

func (p *parser) bad(key string, v any, why string) {
	p.failed[key] = true
	shown := fmt.Sprintf("%q", fmt.Sprint(v))
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
// client's timeout) or a Go duration ("500ms", "1m30s"). Negative values are
// returned as parsed; callers decide what they accept.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f > float64(1<<62)/float64(time.Second) || f < -float64(1<<62)/float64(time.Second) {
			return 0, errors.New("duration out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want seconds (5, 0.5) or a duration (500ms, 1m)")
	}
	return d, nil
}

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
	c.Sinks = p.list("sinks")
	c.FilePath = p.str("file_path")
	c.MetricsAddr = p.str("metrics_addr")
	c.BridgeID = p.str("bridge_id")
	c.OnExit = p.str("on_exit")
	c.ConsulAddr = p.str("consul_addr")
	c.ConsulToken = p.str("consul_token")
	c.ConsulTokenFile = p.str("consul_token_file")
	c.ConsulSSL = p.boolean("consul_ssl")
	c.ConsulCACert = p.str("consul_cacert")
	c.ConsulClientCert = p.str("consul_client_cert")
	c.ConsulClientKey = p.str("consul_client_key")
	c.ConsulTLSServer = p.str("consul_tls_server_name")
	c.ConsulDatacenter = p.str("consul_datacenter")
	c.ConsulNamespace = p.str("consul_namespace")
	c.ConsulPartition = p.str("consul_partition")
	c.ConsulService = p.str("consul_service")
	c.ConsulTags = p.list("consul_tags")
	c.ConsulTTL = p.duration("consul_ttl")
	c.ConsulDeregAfter = p.duration("consul_deregister_after")
	c.ConsulCheck = p.str("consul_check")
	c.ConsulCheckEvery = p.duration("consul_check_interval")
	c.ConsulResync = p.duration("consul_resync")
	c.ConsulLock = p.str("consul_lock")
	c.ConsulLockTTL = p.duration("consul_lock_session_ttl")
}

// validate checks the rules that span the typed values. Problems name the
// key and its source through origin.
// shown gives the value as the user wrote it, and false when the key
// already failed to parse.
func (c *Config) validate(origin func(string) string, shown func(string) (string, bool)) []error {
	var errs []error
	bad := func(key string, v any, why string) {
		raw, ok := shown(key)
		if !ok {
			return
		}
		if elem, ok := v.(string); ok && raw != fmt.Sprintf("%q", elem) {
			raw = fmt.Sprintf("%q", elem) // one bad element of a list
		}
		errs = append(errs, fmt.Errorf("%s: bad value %s: %s", origin(key), raw, why))
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, v, "want one of "+strings.Join(allowed, ", "))
		}
	}
	oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	oneOf("log_format", c.LogFormat, "console", "json")
	if c.Message == "" {
		bad("discovery_message", c.Message, "must not be empty")
	}
	if c.ResponsePrefix == "" {
		bad("response_prefix", c.ResponsePrefix, "must not be empty")
	}
	if c.Timeout <= 0 {
		bad("timeout", c.Timeout, "must be > 0")
	}
	if c.Retries < 0 || c.Retries > 100 {
		bad("retries", c.Retries, "want 0..100")
	}
	if c.ScanRate <= 0 {
		bad("scan_rate", c.ScanRate, "must be > 0")
	}
	oneOf("address_from", c.AddressFrom, "auto", "payload", "source")
	if c.Encryption && c.SecretKey == "" && c.SecretKeyFile == "" {
		errs = append(errs, fmt.Errorf("%s: encryption is on but no secret key is set (secret_key, secret_key_file, DISCOVERY_CLIENT_SECRET_KEY or DISCOVERY_SECRET_KEY)", origin("encryption_enabled")))
	}
	if c.SecretKey != "" && c.SecretKeyFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s: set one, not both", origin("secret_key"), origin("secret_key_file")))
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
	if c.Interval <= 0 {
		bad("interval", c.Interval, "must be > 0")
	}
	if c.MissedRounds < 1 {
		bad("missed_rounds", c.MissedRounds, "must be >= 1")
	}
	if len(c.Sinks) == 0 {
		bad("sinks", "", "at least one sink is needed: stdout, file or consul")
	}
	seen := map[string]bool{}
	for _, s := range c.Sinks {
		if seen[s] {
			bad("sinks", s, "listed twice")
		}
		seen[s] = true
		oneOf("sinks", s, "stdout", "file", "consul")
	}
	if seen["file"] && c.FilePath == "" {
		errs = append(errs, fmt.Errorf("%s: the file sink needs file_path (--file-path or DISCOVERY_CLIENT_FILE_PATH)", origin("sinks")))
	}
	oneOf("on_exit", c.OnExit, "deregister", "keep")
	if c.ConsulToken != "" && c.ConsulTokenFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s: set one, not both", origin("consul_token"), origin("consul_token_file")))
	}
	if c.ConsulService == "" {
		bad("consul_service", c.ConsulService, "must not be empty")
	}
	if c.ConsulTTL < 0 {
		bad("consul_ttl", c.ConsulTTL, "must be >= 0")
	} else if c.ConsulTTL > 0 && c.ConsulTTL <= c.Interval+c.Timeout {
		bad("consul_ttl", c.ConsulTTL, fmt.Sprintf("must exceed interval + timeout (%s), or every round would let the heartbeat lapse", c.Interval+c.Timeout))
	}
	if c.ConsulDeregAfter < time.Minute {
		bad("consul_deregister_after", c.ConsulDeregAfter, "Consul's floor is 1m")
	}
	oneOf("consul_check", c.ConsulCheck, "", "tcp", "http")
	if c.ConsulCheckEvery <= 0 {
		bad("consul_check_interval", c.ConsulCheckEvery, "must be > 0")
	}
	if c.ConsulLockTTL < 10*time.Second {
		bad("consul_lock_session_ttl", c.ConsulLockTTL, "Consul's floor is 10s")
	}
	if c.ConsulResync <= 0 {
		bad("consul_resync", c.ConsulResync, "must be > 0")
	}
	return errs
}

// HeartbeatTTL is the TTL of the Consul heartbeat check: ConsulTTL when set,
// else three intervals plus the round timeout, at least 15s.
func (c *Config) HeartbeatTTL() time.Duration {
	if c.ConsulTTL > 0 {
		return c.ConsulTTL
	}
	return max(3*c.Interval+c.Timeout, 15*time.Second)
}

// ReadSecretKey returns the Fernet key text from secret_key or
// secret_key_file ("" when neither is set). Errors name the file, never the
// key.
func (c *Config) ReadSecretKey() (string, error) {
	if c.SecretKeyFile == "" {
		return strings.TrimSpace(c.SecretKey), nil
	}
	b, err := os.ReadFile(c.SecretKeyFile)
	if err != nil {
		return "", fmt.Errorf("%s: read secret key file: %w", c.Source("secret_key_file"), err)
	}
	return strings.TrimSpace(string(b)), nil
}
