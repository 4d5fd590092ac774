package discover

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// ErrNoField is returned by Options.Set for a key of encrypted mode's key
// source (encryption_enabled, secret_key, secret_key_file; Options holds
// only the parsed Key) and for a name that is no discovery key.
var ErrNoField = errors.New("not a field of Options")

// field is one discovery key and how its value, typed as setting.Key.Parse
// returns it, lands in Options (set) and is read back for validation
// (get). set may refuse a value the Kind's parser accepted (an IPv4
// network that is not one) with a *setting.ValueError. Keys without set are
// read by the loaders themselves (the key source of encrypted mode).
type field struct {
	setting.Key
	set func(o *Options, v any) error
	get func(o Options) any
}

// The names of the key source of encrypted mode: they fill no field of
// Options but decide its Key.
const (
	keyEncryption = "encryption_enabled"
	keySecret     = "secret_key"
	keySecretFile = "secret_key_file"
)

// fields are the discovery keys, in documentation order, with the upstream
// django-udp-discovery client's names, defaults and environment variables
// and the bridge's own keys beside them. They are the one declaration of
// each: LoadOptions, New's validation and the bridge command's flags, file
// keys, environment and documentation all read them.
var fields = []field{
	{key("discovery_port", "port", setting.Port, "9999", "UDP port the servers listen on", "DISCOVERY_CLIENT_PORT"),
		func(o *Options, v any) error { o.Port = v.(uint16); return nil }, func(o Options) any { return o.Port }},
	{with(key("discovery_message", "message", setting.String, "DISCOVER_SERVER", "probe payload (compared byte for byte by the server)", "DISCOVERY_CLIENT_MESSAGE"), func(k *setting.Key) { k.NonEmpty = true }),
		func(o *Options, v any) error {
			if s := v.(string); len(s) > maxUDPPayload {
				return &setting.ValueError{Value: s, Why: fmt.Sprintf("must fit one UDP datagram (%d bytes), got %d bytes", maxUDPPayload, len(s))}
			}
			o.Message = []byte(v.(string))
			return nil
		}, func(o Options) any { return string(o.Message) }},
	{with(key("response_prefix", "response-prefix", setting.String, "SERVER_IP:", "prefix of a valid reply", "DISCOVERY_CLIENT_RESPONSE_PREFIX"), func(k *setting.Key) { k.NonEmpty = true }),
		func(o *Options, v any) error { o.Prefix = []byte(v.(string)); return nil }, func(o Options) any { return string(o.Prefix) }},
	// timeout is a deadline for a whole round. Replies come back within
	// milliseconds; the longest legitimate round is a subnet scan of the
	// most hosts allowed (65,536), 66 s at the default scan_rate and 10
	// minutes at about 110 probes/s. A longer deadline is a mistake (a
	// unit: "600" is seconds) that would make one round hang.
	{with(key("timeout", "timeout", setting.Duration, "5", "deadline for a whole round: seconds (5, 0.5) or a duration (500ms)", "DISCOVERY_CLIENT_TIMEOUT"),
		func(k *setting.Key) { k.Min, k.MinExclusive, k.Max = "0", true, "10m"; k.Usage += "; at most " + k.Max }),
		func(o *Options, v any) error { o.Timeout = v.(time.Duration); return nil }, func(o Options) any { return o.Timeout }},
	{with(key("retries", "retries", setting.Int, "3", "extra probe sends spread over the round", "DISCOVERY_CLIENT_RETRIES"), func(k *setting.Key) { k.Min, k.Max = "0", "100" }),
		func(o *Options, v any) error { o.Retries = v.(int); return nil }, func(o Options) any { return o.Retries }},
	{key("enable_subnet_scan", "enable-subnet-scan", setting.Bool, "true", "send unicast probes to every host of --scan-cidr networks", "DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN"),
		func(o *Options, v any) error { o.SubnetScan = v.(bool); return nil }, func(o Options) any { return o.SubnetScan }},
	{with(key("scan_cidrs", "scan-cidr", setting.List, "", "IPv4 network to scan by unicast (repeatable; at most 65536 hosts in all)", "DISCOVERY_CLIENT_SCAN_CIDRS"), ipv4NetworkKey("10.1.0.0/22")),
		func(o *Options, v any) (err error) { o.ScanCIDRs, err = ipv4Networks(v, "10.1.0.0/22"); return err }, nil},
	{with(key("scan_rate", "scan-rate", setting.Int, "1000", "subnet-scan probes per second", "DISCOVERY_CLIENT_SCAN_RATE"), func(k *setting.Key) { k.Min, k.MinExclusive = "0", true }),
		func(o *Options, v any) error { o.ScanRate = v.(int); return nil }, func(o Options) any { return o.ScanRate }},
	{with(key("interfaces_whitelist", "whitelist", setting.List, "", "only these interfaces (exact names, comma-separated or repeated)", "DISCOVERY_CLIENT_INTERFACES_WHITELIST"),
		func(k *setting.Key) { k.Aliases = []string{"interfaces-whitelist"} }),
		func(o *Options, v any) error { o.Whitelist = v.([]string); return nil }, nil},
	{with(key("interfaces_blacklist", "blacklist", setting.List, "", "never these interfaces (applied after the whitelist)", "DISCOVERY_CLIENT_INTERFACES_BLACKLIST"),
		func(k *setting.Key) { k.Aliases = []string{"interfaces-blacklist"} }),
		func(o *Options, v any) error { o.Blacklist = v.([]string); return nil }, nil},
	{key("interfaces_regex", "interfaces-regex", setting.String, "", "only interfaces whose whole name matches this RE2 pattern, | between alternatives (eth[0-9]+|ens[0-9]+|bond[0-9]+(\\.[0-9]+)?)", "DISCOVERY_CLIENT_INTERFACES_REGEX"),
		func(o *Options, v any) (err error) { o.InterfaceRegex, err = pattern(v); return err }, nil},
	{with(key("interfaces_cidrs", "interfaces-cidr", setting.List, "", "only interface addresses inside one of these IPv4 networks (repeatable or comma-separated)", "DISCOVERY_CLIENT_INTERFACES_CIDRS"), ipv4NetworkKey("192.168.0.0/16")),
		func(o *Options, v any) (err error) {
			o.InterfaceCIDRs, err = ipv4Networks(v, "192.168.0.0/16")
			return err
		}, nil},
	{with(key("interfaces_can_reach", "interfaces-can-reach", setting.String, "", "only the interface the kernel routes this IPv4 address through (looked up each round; nothing is sent to it)", "DISCOVERY_CLIENT_INTERFACES_CAN_REACH"),
		func(k *setting.Key) { k.Pattern, k.PatternHint = `\s*`+setting.IPv4Pattern+`\s*`, canReachHint }),
		setCanReach, nil},
	{key("interfaces_skip_regex", "interfaces-skip-regex", setting.String, "", "never interfaces whose whole name matches this RE2 pattern", "DISCOVERY_CLIENT_INTERFACES_SKIP_REGEX"),
		func(o *Options, v any) (err error) { o.InterfaceSkipRegex, err = pattern(v); return err }, nil},
	{key("interfaces_skip_container", "interfaces-skip-container", setting.Bool, "false", "never container, CNI and cluster-internal interfaces (docker0, cni0, veth*, cali*, flannel.*, kube-ipvs0, cilium_*, ...; the Helm chart turns it on)", "DISCOVERY_CLIENT_INTERFACES_SKIP_CONTAINER"),
		func(o *Options, v any) error { o.SkipContainerInterfaces = v.(bool); return nil }, nil},
	{key("default_port", "default-port", setting.Port, "8000", "port registered when a reply carries none (the stock server never sends one)", "DISCOVERY_CLIENT_DEFAULT_PORT"),
		func(o *Options, v any) error { o.DefaultPort = v.(uint16); return nil }, func(o Options) any { return o.DefaultPort }},
	{with(key("address_from", "address-from", setting.String, "auto", "address to register: auto (payload IP unless loopback/unspecified/multicast/broadcast, then source), payload or source", "DISCOVERY_CLIENT_ADDRESS_FROM"),
		func(k *setting.Key) {
			k.OneOf = []string{string(AddressAuto), string(AddressPayload), string(AddressSource)}
		}),
		func(o *Options, v any) error { o.AddressFrom = AddressPolicy(v.(string)); return nil }, func(o Options) any { return string(o.AddressFrom) }},
	{with(key("advertised_addresses", "advertised-addresses", setting.String, string(AdvertisedLocal), "advertised addresses to admit: local (the reply's source, or inside a selected interface's network or a scan CIDR) or any (upstream: also elsewhere, for a multi-homed server)", "DISCOVERY_CLIENT_ADVERTISED_ADDRESSES"),
		func(k *setting.Key) { k.OneOf = []string{string(AdvertisedLocal), string(AdvertisedAny)} }),
		func(o *Options, v any) error { o.AdvertisedAddresses = AdvertisedPolicy(v.(string)); return nil },
		func(o Options) any { return string(o.AdvertisedAddresses) }},
	{with(key("max_servers_per_source", "max-servers-per-source", setting.Int, strconv.Itoa(DefaultMaxServersPerSource), "new servers one source address may introduce in a round (a stock server answers with one); more are refused and counted", "DISCOVERY_CLIENT_MAX_SERVERS_PER_SOURCE"),
		func(k *setting.Key) { k.Min = "1" }),
		func(o *Options, v any) error { o.MaxServersPerSource = v.(int); return nil }, func(o Options) any { return o.MaxServersPerSource }},
	{key(keyEncryption, "encryption", setting.Bool, "false", "Fernet-encrypted probes and replies (needs a secret key)", "DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "DISCOVERY_ENCRYPTION_ENABLED"), nil, nil},
	{with(key(keySecret, "secret-key", setting.String, "", "Fernet key shared with the servers (prefer --secret-key-file)", "DISCOVERY_CLIENT_SECRET_KEY", "DISCOVERY_SECRET_KEY"),
		func(k *setting.Key) { k.Secret = true }), nil, nil},
	{key(keySecretFile, "secret-key-file", setting.String, "", "file holding the Fernet key", "DISCOVERY_CLIENT_SECRET_KEY_FILE"), nil, nil},
	{with(key("max_token_age", "max-token-age", setting.Duration, seconds(DefaultMaxTokenAge), "encrypted mode: reject replies older than this (replay bound)", "DISCOVERY_CLIENT_MAX_TOKEN_AGE"),
		func(k *setting.Key) { k.Min, k.MinExclusive = "0", true }),
		func(o *Options, v any) error { o.MaxTokenAge = v.(time.Duration); return nil }, func(o Options) any { return o.MaxTokenAge }},
	{with(key("clock_skew", "clock-skew", setting.Duration, seconds(DefaultClockSkew), "encrypted mode: tolerated clock difference with the servers", "DISCOVERY_CLIENT_CLOCK_SKEW"), func(k *setting.Key) { k.Min = "0" }),
		func(o *Options, v any) error { o.ClockSkew = v.(time.Duration); return nil }, func(o Options) any { return o.ClockSkew }},
	{with(key("settle", "settle", setting.Duration, "0", "end a round early once no new server appeared for this long after the last probe (0: off)", "DISCOVERY_CLIENT_SETTLE"), func(k *setting.Key) { k.Min = "0" }),
		func(o *Options, v any) error { o.Settle = v.(time.Duration); return nil }, func(o Options) any { return o.Settle }},
	{with(key("max_replies", "max-replies", setting.Int, "100000", "servers kept per round; more are counted and dropped", "DISCOVERY_CLIENT_MAX_REPLIES"), func(k *setting.Key) { k.Min, k.MinExclusive = "0", true }),
		func(o *Options, v any) error { o.MaxReplies = v.(int); return nil }, func(o Options) any { return o.MaxReplies }},
}

// fieldNamed returns the field of the discovery key name.
func fieldNamed(name string) field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	panic("discover: no discovery key " + name)
}

// key declares a discovery key; with adds what most keys do not have.
func key(name, flag string, kind setting.Kind, def, usage string, env ...string) setting.Key {
	return setting.Key{Name: name, Flag: flag, Env: env, Default: def, Kind: kind, Group: setting.Discovery, Usage: usage}
}

// seconds spells d as a default in seconds ("60s").
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

func with(k setting.Key, f func(*setting.Key)) setting.Key { f(&k); return k }

// Keys returns the discovery keys, in documentation order: the upstream
// client's (discovery_port, discovery_message, response_prefix, timeout,
// retries, enable_subnet_scan, interfaces_whitelist, interfaces_blacklist,
// encryption_enabled, secret_key) and the bridge's, each with its flag,
// environment variables, default, bounds and help. LoadOptions and New
// apply exactly these bounds; a program may generate its documentation or
// its own flags from them and fill Options with Options.Set.
func Keys() []setting.Key {
	out := make([]setting.Key, len(fields))
	for i, f := range fields {
		k := f.Key
		k.Env, k.Aliases, k.OneOf = slices.Clone(k.Env), slices.Clone(k.Aliases), slices.Clone(k.OneOf)
		out[i] = k // a copy: the caller may change it
	}
	return out
}

// Set stores v, the value setting.Key.Parse returned for the discovery key
// name, in o. It refuses what the key's parser cannot know (a network that
// is not IPv4, a bad interface pattern) with a *setting.ValueError, and
// returns ErrNoField for encryption_enabled, secret_key and
// secret_key_file (set Key instead: ParseKey) and for unknown names.
func (o *Options) Set(name string, v any) error {
	for _, f := range fields {
		if f.Name != name {
			continue
		}
		if f.set == nil {
			break
		}
		if err := f.Check(v); err != nil {
			return err
		}
		return f.set(o, v)
	}
	return fmt.Errorf("discovery key %s: %w", name, ErrNoField)
}

// ipv4NetworkKey declares a list of IPv4 networks: its pattern (which the
// chart's schema carries) refuses what ipv4Networks refuses, with the same
// words; example is shown in the refusal.
func ipv4NetworkKey(example string) func(*setting.Key) {
	return func(k *setting.Key) {
		k.Pattern, k.PatternHint = setting.IPv4CIDRPattern, "want an IPv4 network such as "+example
	}
}

// canReachHint is interfaces_can_reach's refusal.
const canReachHint = "want an IPv4 address such as 192.168.1.1"

// ipv4Networks parses a list of IPv4 networks (masked); example is shown in
// the refusal.
func ipv4Networks(v any, example string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range v.([]string) {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return nil, &setting.ValueError{Value: s, Why: "want an IPv4 network such as " + example}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// pattern checks an interface-name pattern (iface.CompilePattern).
func pattern(v any) (string, error) {
	s := v.(string)
	if s == "" {
		return "", nil
	}
	if _, err := iface.CompilePattern(s); err != nil {
		return "", &setting.ValueError{Value: s, Why: "want an RE2 pattern matched against the whole interface name: " + err.Error()}
	}
	return s, nil
}

func setCanReach(o *Options, v any) error {
	s := strings.TrimSpace(v.(string))
	if s == "" {
		o.InterfaceCanReach = netip.Addr{}
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Unmap().Is4() {
		return &setting.ValueError{Value: s, Why: canReachHint}
	}
	o.InterfaceCanReach = a.Unmap()
	return nil
}

// DefaultOptions returns the defaults of the discovery keys (Keys: the
// upstream client's port 9999, DISCOVER_SERVER, SERVER_IP:, 5 s, 3
// retries, subnet scan on, default port 8000, and the bridge's address
// policy auto, 1000 scan probes/s, 100,000 servers, tokens at most 60 s old
// with 30 s of clock skew) plus 1024-byte datagrams and an 8 MiB receive
// buffer.
func DefaultOptions() Options {
	o := Options{MaxDatagram: DefaultMaxDatagram, RecvBuffer: DefaultRecvBuffer}
	for _, f := range fields {
		if f.set == nil || f.Default == "" {
			continue
		}
		v, err := f.Parse(f.Default)
		if err == nil {
			err = f.set(&o, v)
		}
		if err != nil { // the table's own default: a test parses them all
			panic(fmt.Sprintf("discover: default of %s: %v", f.Name, err))
		}
	}
	return o
}
