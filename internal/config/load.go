package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
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
	// Hostname defaults bridge_id (nil: os.Hostname).
	Hostname func() (string, error)
}

// SinkSpec declares one sink to the configuration: its name (a valid value
// of sinks) and its settings (nil when it has none).
type SinkSpec struct {
	Name    string
	Section Section
}

// Schema is the whole configuration surface of a build: the core keys and
// the section of every registered sink.
type Schema struct {
	sinks []SinkSpec
	keys  []Key
}

// NewSchema joins the core keys with the sections of sinks, in order. It
// panics when two keys share a name, flag or environment variable: that is
// a programming error of the build, caught by its tests.
func NewSchema(sinks ...SinkSpec) *Schema {
	s := &Schema{sinks: sinks}
	s.keys = coreKeys(s.SinkNames())
	for _, sk := range sinks {
		if sk.Section != nil {
			s.keys = append(s.keys, sk.Section.Keys()...)
		}
	}
	names, flags, envs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, k := range s.keys {
		for _, f := range append([]string{k.Flag}, k.Aliases...) {
			if flags[f] {
				panic(fmt.Sprintf("config: flag --%s declared twice", f))
			}
			flags[f] = true
		}
		for _, e := range k.Env {
			if envs[e] {
				panic(fmt.Sprintf("config: environment variable %s declared twice", e))
			}
			envs[e] = true
		}
		if names[k.Name] {
			panic(fmt.Sprintf("config: key %s declared twice", k.Name))
		}
		names[k.Name] = true
	}
	return s
}

// SinkNames lists the valid values of sinks, in registration order.
func (s *Schema) SinkNames() []string {
	names := make([]string, len(s.sinks))
	for i, sk := range s.sinks {
		names[i] = sk.Name
	}
	return names
}

// Keys returns every key, core keys first, in documentation order.
func (s *Schema) Keys() []Key { return slices.Clone(s.keys) }

// Load reads every layer into one koanf instance in rising priority
// (defaults < file < env < flags), remembering the layer each key's value
// came from, validates the core and then loads every sink's section (each
// validates itself). The error, when not nil, is an *Error listing all
// problems.
func (s *Schema) Load(in Inputs) (*Config, error) {
	byName := make(map[string]Key, len(s.keys))
	for _, k := range s.keys {
		byName[k.Name] = k
	}
	m := merged{k: koanf.New(delim), src: map[string]string{}}
	defaults := map[string]any{}
	for _, k := range s.keys {
		if k.Default != "" {
			defaults[k.Name] = k.Default
		}
	}
	if err := m.load(confmap.Provider(defaults, ""), nil, func(string) string { return "default" }); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	var problems []error
	if in.File != "" {
		b, err := readFile(in.File)
		if err != nil {
			return nil, &Error{Problems: []error{fmt.Errorf("config file %s: %w", in.File, err)}}
		}
		yp := &yamlParser{byName: byName}
		if err := m.load(rawbytes.Provider(b), yp, func(string) string { return "file " + in.File }); err != nil {
			return nil, &Error{Problems: []error{fmt.Errorf("config file %s: %w", in.File, err)}}
		}
		if yp.unknown != nil {
			problems = append(problems, fmt.Errorf("config file %s: %w", in.File, yp.unknown))
		}
	}
	if in.LookupEnv != nil {
		vars := envVars(s.keys, in.LookupEnv)
		p := env.Provider("", env.Opt{
			EnvironFunc:   func() []string { return vars.environ },
			TransformFunc: func(name, v string) (string, any) { return vars.key[name], v },
		})
		if err := m.load(p, nil, func(key string) string { return "env " + vars.name[key] }); err != nil {
			return nil, fmt.Errorf("load environment: %w", err)
		}
	}
	for name := range in.Flags {
		if _, ok := byName[name]; !ok {
			return nil, fmt.Errorf("internal: flag for unknown key %q", name)
		}
	}
	if err := m.load(confmap.Provider(in.Flags, ""), nil, func(key string) string { return "flag --" + byName[key].Flag }); err != nil {
		return nil, fmt.Errorf("load flags: %w", err)
	}

	p := parser{m: m, byName: byName, failed: map[string]bool{}}
	c := &Config{sources: map[string]string{}}
	for _, k := range s.keys {
		c.sources[k.Name] = p.source(k.Name)
	}
	p.fill(c)
	c.BridgeID = p.bridgeID(in.Hostname)
	p.report(c.validate())
	if !p.anyFailed(appcheck.Keys()) { // else its defaults would stand in
		p.report(c.ValidateAppCheck())
	}
	for _, sk := range s.sinks {
		if sk.Section != nil {
			owns := map[string]bool{}
			for _, k := range sk.Section.Keys() {
				owns[k.Name] = true
			}
			r := &Reader{p: &p, core: c, enabled: slices.Contains(c.Sinks, sk.Name), name: sk.Name, owns: owns}
			c.setSinkSettings(sk.Name, sk.Section.Load(r))
		}
	}
	problems = append(problems, p.problems...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return c, nil
}

// delim separates koanf's key paths: none of ours is nested, so it is a
// byte no key holds.
const delim = "\x00"

// merged is the one koanf instance of every layer, and where each key's
// value came from ("default", "file x.yaml", "env VAR", "flag --name").
type merged struct {
	k   *koanf.Koanf
	src map[string]string
}

// load merges a layer over the ones before, naming the source of each of
// its keys with source.
func (m merged) load(p koanf.Provider, pa koanf.Parser, source func(key string) string) error {
	layer := koanf.New(delim)
	if err := layer.Load(p, pa); err != nil {
		return err
	}
	for _, key := range layer.Keys() {
		key, _, _ = strings.Cut(key, delim) // a YAML mapping as a value
		m.src[key] = source(key)
	}
	return m.k.Merge(layer)
}

// envSet is the environment as the keys read it: for each key, the first
// of its variables that is set.
type envSet struct {
	environ []string          // NAME=value of each winning variable
	key     map[string]string // variable -> key
	name    map[string]string // key -> variable
}

func envVars(keys []Key, lookupEnv func(string) (string, bool)) envSet {
	e := envSet{key: map[string]string{}, name: map[string]string{}}
	for _, k := range keys {
		for _, name := range k.Env {
			if v, ok := lookupEnv(name); ok {
				e.environ = append(e.environ, name+"="+v)
				e.key[name], e.name[k.Name] = k.Name, name
				break // the first variable set wins
			}
		}
	}
	return e
}
