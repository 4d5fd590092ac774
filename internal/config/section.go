package config

import (
	"errors"
	"fmt"
	"time"
)

// Section is one typed part of the configuration, owned by the package that
// uses it (each sink's settings). Its keys, their defaults and its
// validation are written there, once.
type Section interface {
	// Keys declares the section's keys, defaults included.
	Keys() []Key
	// Load reads the section's values through r, validates them, reports
	// every problem through r and returns the settings: a value of the
	// section's own type, which the loaded Config carries
	// (Config.SinkSettings). It runs after the core keys are loaded, so it
	// may check its values against the core (r.Core()). A Section keeps no
	// loaded state.
	Load(r *Reader) any
}

// SinkSettings returns the settings the section of sink name loaded (nil
// when the sink has no section, or the Config was loaded by a Schema that
// does not declare it). Every section of the schema is loaded, the sinks
// not configured included.
func (c *Config) SinkSettings(name string) any { return c.sinkSettings[name] }

// setSinkSettings records the settings sink name's section loaded.
func (c *Config) setSinkSettings(name string, v any) {
	if c.sinkSettings == nil {
		c.sinkSettings = map[string]any{}
	}
	c.sinkSettings[name] = v
}

// KeyError is a bad value of one key, found by validation. Value is what
// was checked (the typed value, or one element of a list); Load reports it
// as the user wrote it, with its source: `timeout (flag --timeout): bad
// value "0": must be > 0`. Secret keys show "[redacted]".
type KeyError struct {
	Key   string
	Value any
	Why   string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("%s: bad value %q: %s", e.Key, fmt.Sprint(e.Value), e.Why)
}

// Reader gives a Section typed access to its keys' merged values. Problems
// of parsing are recorded once per key; Report adds validation problems.
type Reader struct {
	p       *parser
	core    *Config
	enabled bool
	// name and owns are the section's sink and keys: reading the value of
	// a key the section does not declare is a programming error (a core
	// key is read through Core, once resolved for every sink).
	name string
	owns map[string]bool
}

// own panics unless the section declares key: a section that reads
// another's key (or a core key by name) is a programming error, which
// every test that loads the section catches.
func (r *Reader) own(key string) string {
	if r.owns != nil && !r.owns[key] {
		panic(fmt.Sprintf("config: section %s reads key %s, which it does not declare (core keys: Reader.Core)", r.name, key))
	}
	return key
}

// Core returns the loaded core configuration (interval, timeout, sinks...).
func (r *Reader) Core() *Config { return r.core }

// Enabled reports whether the section's sink is among the configured sinks.
func (r *Reader) Enabled() bool { return r.enabled }

// String returns key's value as a string ("" when unset).
func (r *Reader) String(key string) string { return r.p.str(r.own(key)) }

// Int returns key's value as a decimal integer.
func (r *Reader) Int(key string) int { return r.p.integer(r.own(key)) }

// Bool returns key's value as a boolean (true/false, 1/0, yes/no, on/off).
func (r *Reader) Bool(key string) bool { return r.p.boolean(r.own(key)) }

// Duration returns key's value as seconds or a Go duration.
func (r *Reader) Duration(key string) time.Duration { return r.p.duration(r.own(key)) }

// List returns key's value as a list (comma-separated, repeated or a YAML
// list), empty elements dropped.
func (r *Reader) List(key string) []string { return r.p.list(r.own(key)) }

// Origin formats "key (source)" for messages.
func (r *Reader) Origin(key string) string { return r.p.origin(key) }

// Bad records a problem with key's value v; later problems of the same key
// are dropped, as after a parse failure.
func (r *Reader) Bad(key string, v any, why string) { r.p.bad(key, v, why) }

// Report records err as a configuration problem. Every *KeyError in err (a
// single one or an errors.Join of several) is shown with the key's source
// and the value as the user wrote it, and is dropped when the key already
// failed to parse (so a bad value is reported once); other errors are
// recorded as they are.
func (r *Reader) Report(err error) { r.p.report(err) }

// report implements Reader.Report for sections and for the core.
func (p *parser) report(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.report(e)
		}
		return
	}
	var ke *KeyError
	if !errors.As(err, &ke) {
		p.problems = append(p.problems, err)
		return
	}
	raw, ok := p.shown(ke.Key)
	if !ok {
		return
	}
	if elem, ok := ke.Value.(string); ok && !p.byName[ke.Key].Secret && raw != Shorten(elem) {
		raw = Shorten(elem) // one bad element of a list
	}
	p.problems = append(p.problems, fmt.Errorf("%s: bad value %s: %s", p.origin(ke.Key), raw, ke.Why))
}
