package chartgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/duration"
)

// Patterns of the string forms of numbers and durations; "" is allowed
// everywhere: the chart renders nothing and the bridge's default applies.
const (
	decimal         = `([0-9]+(\.[0-9]*)?|\.[0-9]+)`
	decimalPattern  = `^(` + decimal + `)?$`
	fractionPattern = `^(0*\.[0-9]*[1-9][0-9]*|0*1(\.0*)?)?$`
	// durationPattern: seconds as a number ("5", "0.5", "1e-3") or a Go
	// duration ("500ms", "1m30s"), never negative.
	durationPattern = `^(` + decimal + `([eE][-+]?[0-9]+)?|(` + decimal + `(ns|us|µs|μs|ms|s|m|h))+)?$`
)

// schemaComment marks the generated object in values.schema.json.
const schemaComment = "generated from the bridge's key table by internal/chartgen (" + UpdateCommand + "): edit the key table, not this object"

// spliceSchema replaces properties.config of values.schema.json.
func (c *Chart) spliceSchema(b []byte) ([]byte, error) {
	top, err := decodeObj(b)
	if err != nil {
		return nil, err
	}
	props, ok := top.get("properties")
	if !ok {
		return nil, errors.New("no properties")
	}
	po, err := decodeObj(props)
	if err != nil {
		return nil, fmt.Errorf("properties: %w", err)
	}
	cfg, err := c.configSchema()
	if err != nil {
		return nil, err
	}
	if !po.set("config", cfg) {
		return nil, errors.New("properties has no config")
	}
	top.set("properties", po)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(top); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// configSchema is the schema of .Values.config.
func (c *Chart) configSchema() (obj, error) {
	var props obj
	for _, k := range c.keys {
		s, err := c.keySchema(k)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Name, err)
		}
		props = append(props, field{k.Name, s})
	}
	return obj{
		{"$comment", schemaComment},
		{"type", "object"},
		{"description", "bridge configuration keys (bridge.example.yaml), rendered as environment variables"},
		{"additionalProperties", false},
		{"properties", props},
	}, nil
}

// keySchema is the schema of one config value.
func (c *Chart) keySchema(k config.Key) (obj, error) {
	b := BoundsOf(k)
	var s obj
	var err error
	switch c.kindOf(k) {
	case kindBool:
		s = obj{{"type", "boolean"}}
	case kindPort:
		s = obj{{"type", "integer"}, {"minimum", 1}, {"maximum", 65535}}
	case kindInt:
		if s, err = withBounds(obj{{"type", "integer"}}, b, strconv.Atoi); err != nil {
			return nil, err
		}
	case kindFloat:
		s = obj{{"type", []string{"number", "string"}}, {"pattern", floatPattern(b)}}
		if s, err = withBounds(s, b, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }); err != nil {
			return nil, err
		}
	case kindDuration:
		s = obj{{"type", []string{"string", "number"}}, {"pattern", durationPattern}}
		if b.Min == "" {
			s = append(s, field{"minimum", 0})
		}
		if s, err = withBounds(s, b, seconds); err != nil {
			return nil, err
		}
	case kindList:
		items := c.stringSchema(k, b)
		// NonEmpty is not a schema rule: the chart renders nothing for an
		// empty value, and the bridge's default applies.
		s = obj{{"type", "array"}, {"items", items}}
		if k.Unique || b.Unique {
			s = append(s, field{"uniqueItems", true})
		}
	default:
		s = c.stringSchema(k, b)
	}
	return append(s, field{"description", c.usage(k) + " (env " + k.Env[0] + ")"}), nil
}

// stringSchema is the schema of a string (or of a list's elements).
func (c *Chart) stringSchema(k config.Key, b Bounds) obj {
	s := obj{{"type", "string"}}
	if len(b.OneOf) > 0 {
		s = append(s, field{"enum", b.OneOf})
	}
	if k.Pattern != "" {
		// Empty renders nothing: the bridge's default applies.
		s = append(s, field{"pattern", `^$|^(?:` + k.Pattern + `)$`})
	}
	if k.MaxLen > 0 {
		s = append(s, field{"maxLength", k.MaxLen})
	}
	return s
}

// floatPattern is the pattern of a decimal number's string form: a
// fraction 0 < f <= 1, or a number >= 0.
func floatPattern(b Bounds) string {
	if b.Min == "0" && b.MinExclusive && b.Max == "1" {
		return fractionPattern
	}
	return decimalPattern
}

// seconds parses a duration bound as the schema's number form reads it.
func seconds(v string) (float64, error) {
	d, err := duration.Parse(v)
	return d.Seconds(), err
}

// withBounds adds b's minimum and maximum, parsed by parse, to s.
func withBounds[T int | float64](s obj, b Bounds, parse func(string) (T, error)) (obj, error) {
	if b.Min != "" {
		v, err := parse(b.Min)
		if err != nil {
			return nil, fmt.Errorf("minimum %q: %w", b.Min, err)
		}
		if b.MinExclusive {
			s = append(s, field{"exclusiveMinimum", v})
		} else {
			s = append(s, field{"minimum", v})
		}
	}
	if b.Max != "" {
		v, err := parse(b.Max)
		if err != nil {
			return nil, fmt.Errorf("maximum %q: %w", b.Max, err)
		}
		s = append(s, field{"maximum", v})
	}
	return s, nil
}
