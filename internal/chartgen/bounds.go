package chartgen

import (
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// Bounds are the limits of one key's value, in the key's own syntax
// ("0", "100", "100ms", "10m"); empty fields mean no limit.
type Bounds struct {
	Min, Max string // inclusive, unless MinExclusive
	// MinExclusive makes Min exclusive ("must be > 0").
	MinExclusive bool
	// OneOf lists the allowed values (of each element of a list).
	OneOf []string
	// NonEmpty refuses "" (an empty list).
	NonEmpty bool
	// Unique refuses a list naming an element twice.
	Unique bool
	// Float marks a string key the bridge parses as a decimal number.
	Float bool
}

// keyBounds are the bridge's per-key rules, as internal/config and the
// sinks' sections check them. The key table does not carry bounds yet;
// when it does, boundsOf reads them from each config.Key and this table
// goes (the lead switches it). Rules that span several keys or depend on
// the Consul mode are in the chart's templates/_validate.tpl.
var keyBounds = map[string]Bounds{
	"log_level":            {OneOf: []string{"debug", "info", "warn", "error"}},
	"log_format":           {OneOf: []string{"console", "json"}},
	"discovery_message":    {NonEmpty: true},
	"response_prefix":      {NonEmpty: true},
	"timeout":              {Min: "0", MinExclusive: true, Max: config.FormatDuration(config.MaxTimeout)},
	"retries":              {Min: "0", Max: "100"},
	"scan_rate":            {Min: "0", MinExclusive: true},
	"address_from":         {OneOf: []string{"auto", "payload", "source"}},
	"max_token_age":        {Min: "0", MinExclusive: true},
	"clock_skew":           {Min: "0"},
	"settle":               {Min: "0"},
	"max_replies":          {Min: "0", MinExclusive: true},
	"interval":             {Min: config.FormatDuration(config.MinInterval)},
	"missed_rounds":        {Min: "1"},
	"max_removal_fraction": {Min: "0", MinExclusive: true, Max: "1"},
	"removal_guard_rounds": {Min: "0"},
	"sinks":                {NonEmpty: true, Unique: true},
	"consul_mode":          {OneOf: []string{"agent", "catalog"}},
	"on_exit":              {OneOf: []string{"deregister", "keep"}},
	"consul_service":       {NonEmpty: true},
	"consul_ttl":           {Min: "0"},
	"consul_check":         {OneOf: []string{"", "tcp", "http"}},
	"consul_resync":        {Min: "0", MinExclusive: true},
	"consul_write_rate":    {Min: "0", Float: true},
	"consul_parallel":      {Min: "1", Max: "64"},
}

// boundsOf returns k's bounds; the values of sinks are the registered
// sinks.
func boundsOf(k config.Key, sinkNames []string) Bounds {
	b := keyBounds[k.Name]
	if k.Name == "sinks" {
		b.OneOf = slices.Clone(sinkNames)
	}
	return b
}
