package config

import (
	"fmt"
	"slices"

	"github.com/knadh/koanf/providers/confmap"
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

type layer struct {
	name string // "default", "file x.yaml", "env", "flag"
	k    *koanf.Koanf
	src  map[string]string // key -> precise source (env var / flag name)
}

// Load reads every layer, merges them (defaults < file < env < flags),
// validates the core and then loads every sink's section (each validates
// itself). The error, when not nil, is an *Error listing all problems.
func (s *Schema) Load(in Inputs) (*Config, error) {
	keys := s.keys
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
		m, unknown, err := readFile(in.File, byName)
		if err != nil {
			return nil, &Error{Problems: []error{fmt.Errorf("config file %s: %w", in.File, err)}}
		}
		if unknown != nil {
			problems = append(problems, fmt.Errorf("config file %s: %w", in.File, unknown))
		}
		if err := fl.k.Load(confmap.Provider(m, ""), nil); err != nil {
			return nil, &Error{Problems: []error{fmt.Errorf("config file %s: %w", in.File, err)}}
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
	p.report(c.validate(s.SinkNames()))
	for _, sk := range s.sinks {
		if sk.Section != nil {
			c.setSinkSettings(sk.Name, sk.Section.Load(&Reader{p: &p, core: c, enabled: slices.Contains(c.Sinks, sk.Name)}))
		}
	}
	problems = append(problems, p.problems...)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return c, nil
}
