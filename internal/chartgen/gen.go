package chartgen

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// Chart is the chart's view of a build's key table.
type Chart struct {
	keys []config.Key // the keys of .Values.config, in documentation order
	// flagKey maps each flag name to its key, to speak of keys, not
	// flags, in values.yaml.
	flagKey map[string]string
}

// New takes the keys of schema the chart exposes as config values.
func New(schema *config.Schema) *Chart {
	c := &Chart{flagKey: map[string]string{}}
	for _, k := range schema.Keys() {
		c.flagKey[k.Flag] = k.Name
		if !managed[k.Name] {
			c.keys = append(c.keys, k)
		}
	}
	return c
}

// Chart-relative paths of the generated files.
const (
	ValuesFile = "values.yaml"
	SchemaFile = "values.schema.json"
	KeysFile   = "templates/_keys.tpl"
)

// Files returns the generated content of each file of the chart in dir
// (relative path to bytes); values.yaml and values.schema.json are read
// and their generated part replaced.
func (c *Chart) Files(dir string) (map[string][]byte, error) {
	values, err := os.ReadFile(filepath.Join(dir, ValuesFile))
	if err != nil {
		return nil, err
	}
	values, err = c.spliceValues(values)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ValuesFile, err)
	}
	schema, err := os.ReadFile(filepath.Join(dir, SchemaFile))
	if err != nil {
		return nil, err
	}
	schema, err = c.spliceSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SchemaFile, err)
	}
	keys, err := c.keysTemplate()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{ValuesFile: values, SchemaFile: schema, KeysFile: keys}, nil
}

// UpdateCommand regenerates the files.
const UpdateCommand = "go test ./internal/chartgen -update"

// kind is how the chart types a key's value.
type kind string

const (
	kindString   kind = "string"
	kindInt      kind = "int"
	kindPort     kind = "port"
	kindBool     kind = "bool"
	kindDuration kind = "duration"
	kindList     kind = "list"
	kindFloat    kind = "float"
)

func (c *Chart) kindOf(k config.Key) kind {
	switch k.Kind {
	case config.KindInt:
		return kindInt
	case config.KindPort:
		return kindPort
	case config.KindBool:
		return kindBool
	case config.KindDuration:
		return kindDuration
	case config.KindList:
		return kindList
	case config.KindFloat:
		return kindFloat
	}
	if BoundsOf(k).Float {
		return kindFloat
	}
	return kindString
}

var (
	flagRef    = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	repeatable = regexp.MustCompile(` \(repeatable(?: or comma-separated)?\)|repeatable; |, comma-separated or repeated| \(repeatable or comma-separated\)`)
)

// usage is k's help text as a chart user reads it: flags named by their
// keys, no word of repeating a flag.
func (c *Chart) usage(k config.Key) string {
	u := repeatable.ReplaceAllString(k.Usage, "")
	u = flagRef.ReplaceAllStringFunc(u, func(f string) string {
		if name, ok := c.flagKey[strings.TrimPrefix(f, "--")]; ok {
			return name
		}
		return f
	})
	return u
}
