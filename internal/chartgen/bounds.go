package chartgen

import (
	"errors"
	"fmt"
	"slices"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// Bounds are the limits of one key's value, in the key's own syntax
// ("0", "100", "100ms", "10m"); empty fields mean no limit. The first five
// fields are those of setting.Key.
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

// keyBounds are what setting.Key has no field for: a string key the bridge parses as a decimal
// (consul_write_rate), and an enum whose empty value means "off"
// (consul_check). A key that declares bounds of its own must not be here
// (the test checks it). Rules that span several keys or depend on the
// Consul mode are in the chart's templates/_validate.tpl.
var keyBounds = map[string]Bounds{
	"consul_check":      {OneOf: []string{"", "tcp", "http"}},
	"consul_write_rate": {Min: "0", Float: true},
}

// declared reports whether k carries bounds of its own.
func declared(k config.Key) bool {
	return k.Min != "" || k.Max != "" || len(k.OneOf) > 0 || k.NonEmpty
}

// BoundsOf returns k's bounds: its own, with the table's Unique and Float.
func BoundsOf(k config.Key) Bounds {
	b := keyBounds[k.Name]
	if declared(k) {
		b.Min, b.Max, b.MinExclusive, b.OneOf, b.NonEmpty = k.Min, k.Max, k.MinExclusive, slices.Clone(k.OneOf), k.NonEmpty
	}
	return b
}

// CheckTable returns an error naming every key of keys that declares
// bounds of its own and is given bounds by the table too.
func CheckTable(keys []config.Key) error {
	var errs []error
	for _, k := range keys {
		t, ok := keyBounds[k.Name]
		if ok && declared(k) && (t.Min != "" || t.Max != "" || t.MinExclusive || len(t.OneOf) > 0 || t.NonEmpty) {
			errs = append(errs, fmt.Errorf("key %s declares its bounds; drop it from chartgen's keyBounds", k.Name))
		}
	}
	return errors.Join(errs...)
}
