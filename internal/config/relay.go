package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/relay"
)

// relayCategory titles the relay's keys.
const relayCategory = "Relay"

// The values of relay_source.
const (
	RelaySourceAuto       = "auto"
	RelaySourceConsul     = "consul"
	RelaySourceKubernetes = "kubernetes"
	RelaySourceLocal      = "local"
)

// DefaultRelayMaxStale is relay_max_stale's default: a set is relayed until
// it is 30 s older than its source's period. It rides out what a registry
// does in its normal life: a Consul leader election (a few seconds, during
// which reads fail), a rolling restart of the servers or of an API server
// (tens of seconds); and a server that went away while the registry could
// not be read is relayed at most that much longer, the order of what the
// fleet itself takes to notice a dead bridge (sessions of 10 s invalidated
// within twice that, Leases of 15 s).
const DefaultRelayMaxStale = 30 * time.Second

// Relay is the relay's configuration (the relay_* keys). It is on when
// Engine.Interfaces names an interface.
type Relay struct {
	// Engine is the engine's configuration with the keys' values
	// (Interfaces, Delay, MaxReplies, Rate, Burst, GlobalRate,
	// GlobalBurst) and the engine's defaults for the rest: bridge run
	// sets the codec (message, prefix, key, token age) from discovery's
	// and the age bound from the source.
	Engine relay.Config
	// Source is where the relayed servers come from (relay_source); see
	// ResolveRelaySource.
	Source string
	// MaxStale is how much older than its source's period a set is still
	// relayed (relay_max_stale).
	MaxStale time.Duration
}

// Enabled reports whether the relay is on: relay_interfaces names an
// interface.
func (r Relay) Enabled() bool { return len(r.Engine.Interfaces) > 0 }

// relayKeys are the relay's keys, their defaults the engine's
// (relay.DefaultConfig).
func relayKeys() []Key {
	d := relay.DefaultConfig()
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	key := func(name string, kind Kind, def, usage string) Key {
		return Key{Name: name, Flag: strings.ReplaceAll(name, "_", "-"), Env: []string{"DISCOVERY_CLIENT_" + strings.ToUpper(name)},
			Default: def, Kind: kind, Group: GroupRun, Category: relayCategory, Usage: usage}
	}
	keys := []Key{
		key("relay_interfaces", KindList, "", "relay: answer stock clients' probes on these interfaces (exact names, comma-separated or repeated) with the ready servers the registry holds on other segments; empty: the relay is off"),
		key("relay_delay", KindDuration, FormatDuration(d.Delay), "relay: hold each reply back this long, so that a server on the client's own segment answers first (0..1s)"),
		key("relay_max_replies", KindInt, strconv.Itoa(d.MaxReplies), "relay: servers one probe is answered with at most; consecutive probes page through a larger set"),
		key("relay_rate_limit", KindFloat, num(d.Rate), "relay: replies per second to one source address, after relay_burst (0: no limit)"),
		key("relay_burst", KindInt, strconv.Itoa(d.Burst), "relay: replies to one source address at once before relay_rate_limit applies; at least relay_max_replies"),
		key("relay_global_rate_limit", KindFloat, num(d.GlobalRate), "relay: replies per second to all sources together, after relay_global_burst (0: no limit)"),
		key("relay_global_burst", KindInt, strconv.Itoa(d.GlobalBurst), "relay: replies to all sources at once before relay_global_rate_limit applies; at least relay_max_replies"),
		key("relay_source", KindString, RelaySourceAuto, "relay: where the relayed servers come from: auto (consul when the consul sink runs in catalog mode, else kubernetes when the kubernetes sink writes EndpointSlices, else local), consul (the fleet's passing instances in the catalog), kubernetes (the fleet's ready EndpointSlice endpoints) or local (this bridge's own ready servers)"),
		key("relay_max_stale", KindDuration, FormatDuration(DefaultRelayMaxStale), "relay: once its source cannot be read, keep relaying the last set read until it is this much older than the source's period (consul 10.6s, kubernetes 6s, local interval + timeout), then answer nothing"),
	}
	for i := range keys {
		k := &keys[i]
		switch k.Name {
		case "relay_interfaces":
			k.Unique = true
		case "relay_delay":
			k.Min, k.Max = "0", FormatDuration(relay.MaxDelay)
		case "relay_max_replies":
			k.Min, k.Max = "1", strconv.Itoa(relay.MaxMaxReplies)
		case "relay_rate_limit", "relay_global_rate_limit":
			k.Min, k.Hint = "0", "(0: no limit)"
		case "relay_burst", "relay_global_burst":
			k.Min = "1"
		case "relay_source":
			k.OneOf = []string{RelaySourceAuto, RelaySourceConsul, RelaySourceKubernetes, RelaySourceLocal}
		case "relay_max_stale":
			k.Min, k.Max = "0", "1h"
		}
	}
	return keys
}

// fillRelay reads the relay's keys.
func (p *parser) fillRelay(c *Config) {
	e := relay.DefaultConfig()
	e.Interfaces = p.list("relay_interfaces")
	e.Delay, e.MaxReplies = p.duration("relay_delay"), p.integer("relay_max_replies")
	e.Rate, e.Burst = p.float("relay_rate_limit"), p.integer("relay_burst")
	e.GlobalRate, e.GlobalBurst = p.float("relay_global_rate_limit"), p.integer("relay_global_burst")
	c.Relay = Relay{Engine: e, Source: p.str("relay_source"), MaxStale: p.duration("relay_max_stale")}
}

// validateRelay checks the relay's rules that span keys: a full answer
// must fit in each bucket. Checked whether the relay is on or not, so that
// turning it on never meets a refusal the file had all along. (A key whose
// value did not parse is not reported again: Load drops its KeyError.)
func (c *Config) validateRelay() error {
	var errs []error
	r := c.Relay.Engine
	if r.Rate > 0 && r.Burst < r.MaxReplies {
		errs = append(errs, &KeyError{Key: "relay_burst", Value: r.Burst, Why: fmt.Sprintf("below relay_max_replies %d: a full answer could never be paid for (or set relay_rate_limit 0: no limit)", r.MaxReplies)})
	}
	if r.GlobalRate > 0 && r.GlobalBurst < r.MaxReplies {
		errs = append(errs, &KeyError{Key: "relay_global_burst", Value: r.GlobalBurst, Why: fmt.Sprintf("below relay_max_replies %d: a full answer could never be paid for (or set relay_global_rate_limit 0: no limit)", r.MaxReplies)})
	}
	return errors.Join(errs...)
}

// ResolveRelaySource returns the relay's source: relay_source, with auto
// resolved: consul when the consul sink is on in catalog mode
// (consulCatalog: consul_mode is a key of the sink's section, which this
// package cannot read), else kubernetes when the kubernetes sink is on and
// writes EndpointSlices (k8sSlices: k8s_write, the sink's too), else
// local. A source named explicitly needs what it reads: consul the consul
// sink in catalog mode (the fleet's entries are catalog mode's),
// kubernetes the kubernetes sink writing EndpointSlices (the slices are
// its fleet's). The error
// names the key, its value and where it came from.
func (c *Config) ResolveRelaySource(consulCatalog, k8sSlices bool) (string, error) {
	consulOn := slices.Contains(c.Sinks, RelaySourceConsul) && consulCatalog
	k8sOn := slices.Contains(c.Sinks, RelaySourceKubernetes) && k8sSlices
	bad := func(why string) error {
		return &Error{Problems: []error{fmt.Errorf("%s: bad value %q: %s", c.origin("relay_source"), c.Relay.Source, why)}}
	}
	switch c.Relay.Source {
	case RelaySourceAuto:
		switch {
		case consulOn:
			return RelaySourceConsul, nil
		case k8sOn:
			return RelaySourceKubernetes, nil
		}
		return RelaySourceLocal, nil
	case RelaySourceConsul:
		if !consulOn {
			return "", bad("the relay reads the servers the fleet's catalog mode writes: it needs the consul sink in catalog mode (sinks: consul, consul_mode: catalog)")
		}
	case RelaySourceKubernetes:
		if !k8sOn {
			return "", bad("the relay reads the EndpointSlices the fleet's kubernetes sink writes: it needs that sink writing them (sinks: kubernetes, k8s_write: endpointslices)")
		}
	case RelaySourceLocal:
	default:
		return "", bad("want one of auto, consul, kubernetes, local")
	}
	return c.Relay.Source, nil
}
