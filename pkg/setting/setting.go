// Package setting declares configuration keys once: a Key carries its name,
// flag, environment variables, default, kind, bounds and help, and its one
// parser, so every surface built from it (flags, a file, the environment,
// documentation, a Helm schema) takes and refuses the same values.
//
// pkg/discover declares the discovery keys with it (discover.Keys); the
// bridge command declares the rest.
package setting

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/duration"
)

// Kind says how a key's value is parsed and what Parse returns.
type Kind int

// The kinds, each with the type Parse returns.
const (
	String   Kind = iota // string
	Int                  // decimal integer: int
	Port                 // 1..65535: uint16
	Bool                 // true/false, 1/0, yes/no, on/off: bool
	Duration             // seconds as a number ("5", "0.5") or a Go duration ("500ms"): time.Duration
	List                 // comma-separated in env, repeatable flag, YAML list: []string
	Float                // decimal number (0.5): float64
)

// Group says which subcommands of the bridge take a key as a flag.
type Group int

// The groups.
const (
	Global    Group = iota // every command
	Discovery              // discover, doctor, run
	Run                    // run (the sidecar and its sinks)
)

// Key describes one configuration key.
type Key struct {
	// Name is the key in a config file ("retries").
	Name string
	// Flag is the command-line flag without dashes ("retries"); Aliases
	// are further names of it.
	Flag    string
	Aliases []string
	// Env lists the environment variables of the key; the first one set
	// wins.
	Env []string
	// Default is the value when nothing sets the key, in the key's own
	// syntax ("5", "10s", "a,b" for a list); "" means none.
	Default string
	Kind    Kind
	// Min and Max are inclusive bounds in the key's own syntax ("0",
	// "100", "100ms", "10m", "0.5"); "" means none. MinExclusive refuses
	// Min itself ("must be > 0").
	Min, Max     string
	MinExclusive bool
	// Hint follows a refusal by the bounds or NonEmpty: "(0 turns the
	// removal guard off)".
	Hint string
	// OneOf lists the allowed values of a String key, or of each element
	// of a List.
	OneOf []string
	// NonEmpty refuses the empty string (or an empty list).
	NonEmpty bool
	// Pattern is an RE2 expression a non-empty String value (each
	// element of a List) must match whole; PatternHint says what it
	// means in a refusal ("want a DNS label ..."). MaxLen, when > 0, is
	// the most characters such a value may have (Hint follows its
	// refusal). The chart's schema carries both.
	Pattern     string
	PatternHint string
	MaxLen      int
	// Unique refuses a List naming an element twice. The chart's schema
	// carries it (uniqueItems).
	Unique bool
	// Secret keys are never echoed in errors or logs.
	Secret bool
	Group  Group
	// Category titles the key's group in --help and in the example file
	// ("Consul sink"); empty means the title of its Group.
	Category string
	Usage    string
}

// Title is the heading of k in --help and the example file.
func (k Key) Title() string {
	if k.Category != "" {
		return k.Category
	}
	switch k.Group {
	case Discovery:
		return "Discovery"
	case Run:
		return "Sidecar"
	}
	return "Global"
}

// ValueError is a value a key refuses. Value is the part at fault, as
// written: the whole value, or one element of a list; Why says why
// ("want 0..100"). Error returns Why alone, so callers add the key, the
// value and where it came from.
type ValueError struct {
	Value string
	Why   string
}

func (e *ValueError) Error() string { return e.Why }

// Parse reads raw, a string from the environment or a flag, or what a YAML
// file holds (bool, number, []any), as k's Kind, and checks it against
// k's bounds, OneOf and NonEmpty. It returns string, int, uint16 (Port),
// bool, time.Duration, []string or float64; the error is a *ValueError.
// An empty string is the zero value of Int, Float and Bool.
func (k Key) Parse(raw any) (any, error) {
	if k.Kind == List {
		l := list(raw)
		return l, k.Check(l)
	}
	var s string
	switch t := raw.(type) {
	case nil:
	case string:
		s = t
	case []any, []string, map[string]any:
		return nil, &ValueError{Value: fmt.Sprint(raw), Why: "want a single value"}
	case bool:
		if k.Kind == Bool {
			return t, nil
		}
		s = strconv.FormatBool(t)
	default:
		s = fmt.Sprint(t)
	}
	v, err := k.scalar(s)
	if err != nil {
		return nil, err
	}
	return v, k.Check(v)
}

func (k Key) scalar(s string) (any, error) {
	bad := func(why string) error { return &ValueError{Value: s, Why: why} }
	t := strings.TrimSpace(s)
	switch k.Kind {
	case Int:
		if t == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(t)
		if err != nil {
			return nil, bad("want a whole number")
		}
		return n, nil
	case Float:
		if t == "" {
			return 0.0, nil
		}
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, bad("want a decimal number such as 0.5")
		}
		return f, nil
	case Port:
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("want a port number 1..65535")
		}
		return uint16(n), nil
	case Bool:
		switch strings.ToLower(t) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off", "":
			return false, nil
		}
		return nil, bad("want true/false, 1/0, yes/no or on/off")
	case Duration:
		d, err := duration.Parse(t)
		if err != nil {
			return nil, bad(err.Error())
		}
		return d, nil
	}
	return s, nil
}

// list splits a list value: a comma-separated string, repeated flags
// ([]string, each comma-separated too) or a YAML list; elements are
// trimmed and empty ones dropped.
func list(raw any) []string {
	var parts []string
	switch t := raw.(type) {
	case nil:
	case string:
		parts = strings.Split(t, ",")
	case []string:
		for _, s := range t {
			parts = append(parts, strings.Split(s, ",")...)
		}
	case []any:
		for _, e := range t {
			parts = append(parts, fmt.Sprint(e))
		}
	default:
		parts = []string{fmt.Sprint(t)}
	}
	var out []string
	for _, s := range parts {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// String names the kind ("duration").
func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Int:
		return "int"
	case Port:
		return "port"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case List:
		return "list"
	case Float:
		return "float"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Patterns of values the bridge parses as addresses, for Key.Pattern: the
// key's own parser refuses the same values, and the chart's schema carries
// the pattern.
const (
	octet = `(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])`
	// IPv4Pattern is a dotted-quad IPv4 address, optionally in its
	// IPv4-mapped IPv6 spelling (::ffff:10.0.0.1), as netip parses it.
	IPv4Pattern = `(::[fF]{4}:)?` + octet + `(\.` + octet + `){3}`
	// IPv4CIDRPattern is an IPv4 network in CIDR notation (10.1.0.0/22).
	IPv4CIDRPattern = octet + `(\.` + octet + `){3}/([0-9]|[12][0-9]|3[0-2])`
)
