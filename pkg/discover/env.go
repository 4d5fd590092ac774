package discover

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/duration"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// EnvError is an environment variable whose value LoadOptions cannot use.
// Its message names the configuration key, the variable and the value, as
// `timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon": want seconds
// (5, 0.5) or a duration (500ms, 1m)`, in the words of the bridge
// command; a secret key is shown as [redacted], never as its value.
type EnvError struct {
	Key   string // upstream configuration key, e.g. "timeout"
	Var   string // the variable the value came from
	Value string // the value as set; empty for a secret key
	Err   error  // what is wrong with it (ErrInvalidKey for a bad key)

	secret bool
}

func (e *EnvError) Error() string {
	v := strconv.Quote(e.Value)
	if e.secret {
		v = "[redacted]"
	}
	return fmt.Sprintf("%s (env %s): bad value %s: %v", e.Key, e.Var, v, e.Err)
}

// Unwrap returns Err.
func (e *EnvError) Unwrap() error { return e.Err }

// envKey is one configuration key read from the environment: the upstream
// client's name, its variables (the first one set wins) and how its value
// lands in Options. apply returns why a value is bad, or "".
type envKey struct {
	key   string
	vars  []string
	apply func(l *envLoad, v string) string
}

// envKeys are the discovery keys the bridge command also reads from the
// environment, with the same variables and the same rules; a test keeps
// them in step with internal/config's key table.
var envKeys = []envKey{
	{"discovery_port", []string{"DISCOVERY_CLIENT_PORT"}, func(l *envLoad, v string) string { return parsePort(v, &l.o.Port) }},
	{"discovery_message", []string{"DISCOVERY_CLIENT_MESSAGE"}, func(l *envLoad, v string) string { return nonEmpty(v, &l.o.Message) }},
	{"response_prefix", []string{"DISCOVERY_CLIENT_RESPONSE_PREFIX"}, func(l *envLoad, v string) string { return nonEmpty(v, &l.o.Prefix) }},
	{"timeout", []string{"DISCOVERY_CLIENT_TIMEOUT"}, func(l *envLoad, v string) string { return parseDur(v, 1, &l.o.Timeout) }},
	{"retries", []string{"DISCOVERY_CLIENT_RETRIES"}, func(l *envLoad, v string) string { return parseInt(v, 0, 100, &l.o.Retries) }},
	{"enable_subnet_scan", []string{"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN"}, func(l *envLoad, v string) string { return parseBool(v, &l.o.SubnetScan) }},
	{"scan_cidrs", []string{"DISCOVERY_CLIENT_SCAN_CIDRS"}, func(l *envLoad, v string) string { return parsePrefixes(v, &l.o.ScanCIDRs) }},
	{"scan_rate", []string{"DISCOVERY_CLIENT_SCAN_RATE"}, func(l *envLoad, v string) string { return parseInt(v, 1, -1, &l.o.ScanRate) }},
	{"interfaces_whitelist", []string{"DISCOVERY_CLIENT_INTERFACES_WHITELIST"}, func(l *envLoad, v string) string { l.o.Whitelist = splitList(v); return "" }},
	{"interfaces_blacklist", []string{"DISCOVERY_CLIENT_INTERFACES_BLACKLIST"}, func(l *envLoad, v string) string { l.o.Blacklist = splitList(v); return "" }},
	{"interfaces_regex", []string{"DISCOVERY_CLIENT_INTERFACES_REGEX"}, func(l *envLoad, v string) string { return parsePattern(v, &l.o.InterfaceRegex) }},
	{"interfaces_skip_regex", []string{"DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX"}, func(l *envLoad, v string) string { return parsePattern(v, &l.o.InterfaceSkipRegex) }},
	{"interfaces_cidrs", []string{"DISCOVERY_CLIENT_INTERFACES_CIDRS"}, func(l *envLoad, v string) string { return parsePrefixes(v, &l.o.InterfaceCIDRs) }},
	{"interfaces_can_reach", []string{"DISCOVERY_CLIENT_INTERFACES_CAN_REACH"}, func(l *envLoad, v string) string {
		v = strings.TrimSpace(v)
		if v == "" {
			l.o.InterfaceCanReach = netip.Addr{}
			return ""
		}
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Unmap().Is4() {
			return "want an IPv4 address such as 10.1.0.1"
		}
		l.o.InterfaceCanReach = a.Unmap()
		return ""
	}},
	{"interfaces_skip_container", []string{"DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER"}, func(l *envLoad, v string) string { return parseBool(v, &l.o.SkipContainerInterfaces) }},
	{"default_port", []string{"DISCOVERY_CLIENT_DEFAULT_PORT"}, func(l *envLoad, v string) string { return parsePort(v, &l.o.DefaultPort) }},
	{"address_from", []string{"DISCOVERY_CLIENT_ADDRESS_FROM"}, func(l *envLoad, v string) string {
		switch p := AddressPolicy(v); p {
		case AddressAuto, AddressPayload, AddressSource:
			l.o.AddressFrom = p
			return ""
		}
		return "want one of auto, payload, source"
	}},
	{"encryption_enabled", []string{"DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "DISCOVERY_ENCRYPTION_ENABLED"}, func(l *envLoad, v string) string { return parseBool(v, &l.encryption) }},
	{"secret_key", []string{"DISCOVERY_CLIENT_SECRET_KEY", "DISCOVERY_SECRET_KEY"}, func(l *envLoad, v string) string { l.key = strings.TrimSpace(v); return "" }},
	{"secret_key_file", []string{"DISCOVERY_CLIENT_SECRET_KEY_FILE"}, func(l *envLoad, v string) string { l.keyFile = v; return "" }},
	{"max_token_age", []string{"DISCOVERY_CLIENT_MAX_TOKEN_AGE"}, func(l *envLoad, v string) string { return parseDur(v, 1, &l.o.MaxTokenAge) }},
	{"clock_skew", []string{"DISCOVERY_CLIENT_CLOCK_SKEW"}, func(l *envLoad, v string) string { return parseDur(v, 0, &l.o.ClockSkew) }},
	{"settle", []string{"DISCOVERY_CLIENT_SETTLE"}, func(l *envLoad, v string) string { return parseDur(v, 0, &l.o.Settle) }},
	{"max_replies", []string{"DISCOVERY_CLIENT_MAX_REPLIES"}, func(l *envLoad, v string) string { return parseInt(v, 1, -1, &l.o.MaxReplies) }},
}

// envLoad is LoadOptions' state: the options so far and what the
// encryption keys said.
type envLoad struct {
	o            Options
	vars         map[string]string // key -> the variable it was read from
	encryption   bool
	key, keyFile string
}

// OptionsFromEnv is LoadOptions with the process environment
// (os.LookupEnv): upstream's ClientConfig.from_env() and, with overrides,
// load_config(**overrides).
func OptionsFromEnv(overrides ...func(*Options)) (Options, error) {
	return LoadOptions(os.LookupEnv, overrides...)
}

// LoadOptions builds Options as the upstream client builds its
// configuration: DefaultOptions, then the DISCOVERY_CLIENT_* environment
// variables read with lookupEnv, then overrides in order (each sets the
// fields it wants), so defaults < environment < overrides. The result is
// validated as New validates it.
//
// The variables are upstream's (DISCOVERY_CLIENT_PORT, _MESSAGE,
// _RESPONSE_PREFIX, _TIMEOUT, _RETRIES, _ENABLE_SUBNET_SCAN,
// _INTERFACES_WHITELIST, _INTERFACES_BLACKLIST, and for encrypted mode
// DISCOVERY_CLIENT_ENCRYPTION_ENABLED or DISCOVERY_ENCRYPTION_ENABLED and
// DISCOVERY_CLIENT_SECRET_KEY or DISCOVERY_SECRET_KEY) plus the bridge's
// (DISCOVERY_CLIENT_DEFAULT_PORT, _ADDRESS_FROM, _SCAN_CIDRS, _SCAN_RATE,
// _SECRET_KEY_FILE, _MAX_TOKEN_AGE, _CLOCK_SKEW, _SETTLE, _MAX_REPLIES,
// _INTERFACES_REGEX, _INTERFACES_SKIP_REGEX, _INTERFACES_CIDRS,
// _INTERFACES_CAN_REACH, _INTERFACES_SKIP_CONTAINER),
// with the rules of the bridge command: durations are seconds ("5", "0.5")
// or Go durations ("500ms"); booleans true/1/yes/on or false/0/no/off;
// lists comma-separated; ports 1..65535. Where two variables name one key
// the first one set wins.
//
// Encryption on (from the environment) with no key from the environment or
// an override, or with a key that does not parse, is an error, never a
// silent fall back to plaintext. Without encryption on, a key in the
// environment is ignored. An override that sets Key turns encryption on.
//
// Every problem is reported at once (errors.Join): each bad variable as an
// *EnvError naming it and its value (never a secret key's), then what
// validation finds in the final Options, named by configuration key. A bad
// variable leaves its field at the default, so it is reported once.
func LoadOptions(lookupEnv func(string) (string, bool), overrides ...func(*Options)) (Options, error) {
	l := envLoad{o: DefaultOptions(), vars: map[string]string{}}
	var errs []error
	for _, k := range envKeys {
		for _, name := range k.vars {
			v, ok := lookupEnv(name)
			if !ok {
				continue
			}
			l.vars[k.key] = name
			if why := k.apply(&l, v); why != "" {
				errs = append(errs, &EnvError{Key: k.key, Var: name, Value: v, Err: errors.New(why)})
			}
			break // the first variable set wins
		}
	}
	if l.encryption {
		if err := l.loadKey(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range overrides {
		f(&l.o)
	}
	if l.encryption && l.o.Key == nil && l.key == "" && l.keyFile == "" {
		errs = append(errs, fmt.Errorf("encryption_enabled (env %s): encryption is on but no secret key is set "+
			"(DISCOVERY_CLIENT_SECRET_KEY, DISCOVERY_SECRET_KEY, DISCOVERY_CLIENT_SECRET_KEY_FILE or an override of Key)",
			l.vars["encryption_enabled"]))
	}
	errs = append(errs, validate(l.o))
	return l.o, errors.Join(errs...)
}

// loadKey reads and parses the key from the environment, when one is set.
// Its errors name the variable (and file), never the key.
func (l *envLoad) loadKey() error {
	keyVar, fileVar := l.vars["secret_key"], l.vars["secret_key_file"]
	switch {
	case l.key != "" && l.keyFile != "":
		return fmt.Errorf("secret_key (env %s) and secret_key_file (env %s): set one, not both", keyVar, fileVar)
	case l.keyFile != "":
		b, err := os.ReadFile(l.keyFile)
		if err != nil {
			return fmt.Errorf("secret_key_file (env %s): read secret key file: %w", fileVar, err)
		}
		k, err := ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("secret_key_file (env %s) %s: %w", fileVar, l.keyFile, err)
		}
		l.o.Key = k
	case l.key != "":
		k, err := ParseKey(l.key)
		if err != nil {
			return &EnvError{Key: "secret_key", Var: keyVar, Err: err, secret: true}
		}
		l.o.Key = k
	}
	return nil // no key: reported after the overrides, which may set Key
}

// parsePrefixes parses a comma-separated list of IPv4 networks.
func parsePrefixes(v string, dst *[]netip.Prefix) string {
	var out []netip.Prefix
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return fmt.Sprintf("%q: want an IPv4 network such as 10.1.0.0/22", s)
		}
		out = append(out, p.Masked())
	}
	*dst = out
	return ""
}

// parsePattern checks an interface-name pattern (iface.CompilePattern).
func parsePattern(v string, dst *string) string {
	if _, err := iface.CompilePattern(v); err != nil {
		return err.Error()
	}
	*dst = v
	return ""
}

func parsePort(v string, dst *uint16) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 65535 {
		return "want a port number 1..65535"
	}
	*dst = uint16(n)
	return ""
}

func nonEmpty(v string, dst *[]byte) string {
	if v == "" {
		return "must not be empty"
	}
	*dst = []byte(v)
	return ""
}

// parseInt parses a whole number in min..max (no upper bound when max < 0).
func parseInt(v string, min, max int, dst *int) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil:
		return "want a whole number"
	case n < min && max < 0:
		return fmt.Sprintf("must be >= %d", min)
	case n < min || (max >= 0 && n > max):
		return fmt.Sprintf("want %d..%d", min, max)
	}
	*dst = n
	return ""
}

// parseDur parses a duration that must be at least min.
func parseDur(v string, min time.Duration, dst *time.Duration) string {
	d, err := parseDuration(strings.TrimSpace(v))
	switch {
	case err != nil:
		return err.Error()
	case d < min && min > 0:
		return "must be > 0"
	case d < min:
		return "must be >= 0"
	}
	*dst = d
	return ""
}

func parseBool(v string, dst *bool) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		*dst = true
	case "false", "0", "no", "off", "":
		*dst = false
	default:
		return "want true/false, 1/0, yes/no or on/off"
	}
	return ""
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items; nil when nothing is left.
func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseDuration parses seconds ("5", "0.5", as the upstream client's
// timeout) or a Go duration ("500ms"), exactly as the bridge command's
// configuration does (both use internal/duration).
func parseDuration(s string) (time.Duration, error) { return duration.Parse(s) }
