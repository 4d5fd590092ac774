package chartgen

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// The lines fencing the generated keys of values.yaml's config block.
const (
	valuesBegin = "  # BEGIN generated from the bridge's key table by internal/chartgen (" + UpdateCommand + "): edit the key table, not these lines"
	valuesEnd   = "  # END generated"
)

// spliceValues replaces the fenced region of values.yaml with the config
// keys.
func (c *Chart) spliceValues(b []byte) ([]byte, error) {
	begin := bytes.Index(b, []byte(valuesBegin+"\n"))
	end := bytes.Index(b, []byte(valuesEnd+"\n"))
	if begin < 0 || end < begin {
		return nil, errors.New("no generated region (the lines " + strconv.Quote(valuesBegin) + " and " + strconv.Quote(valuesEnd) + ")")
	}
	var out bytes.Buffer
	out.Write(b[:begin])
	out.WriteString(valuesBegin + "\n")
	out.WriteString(c.valuesKeys())
	out.Write(b[end:])
	return out.Bytes(), nil
}

// headings name the core groups in values.yaml; a sink's keys are headed
// by their Category.
var headings = map[string]string{"Global": "Logging"}

// valuesKeys renders every config key with its @param comment and its
// default, grouped under the key table's headings.
func (c *Chart) valuesKeys() string {
	var b strings.Builder
	title := ""
	for _, k := range c.keys {
		if t := k.Title(); t != title {
			if title != "" {
				b.WriteString("\n")
			}
			title = t
			h := headings[t]
			if h == "" {
				h = t
			}
			fmt.Fprintf(&b, "  ## %s\n", h)
		}
		for _, line := range before[k.Name] {
			fmt.Fprintf(&b, "  ## %s\n", line)
		}
		fmt.Fprintf(&b, "  ## @param config.%s %s\n", k.Name, c.comment(k))
		b.WriteString(c.valueLines(k))
	}
	return b.String()
}

// comment is the description of a config key in values.yaml.
func (c *Chart) comment(k config.Key) string {
	s := c.usage(k)
	if n := notes[k.Name]; n != "" {
		s += "; " + n
	}
	env := "env " + k.Env[0]
	if d, ok := chartDefaults[k.Name]; ok {
		env += fmt.Sprintf("; chart default %s (%s), bridge default %s", inline(d.value), d.why, inline(k.Default))
	}
	return s + " (" + env + ")"
}

// inline spells a default in a comment.
func inline(v any) string {
	switch v := v.(type) {
	case []string:
		return strings.Join(v, ",")
	case string:
		if v == "" {
			return "none"
		}
		return v
	}
	return fmt.Sprint(v)
}

// valueLines renders k's chart default as YAML lines of the config map.
func (c *Chart) valueLines(k config.Key) string {
	var v any = k.Default
	if d, ok := chartDefaults[k.Name]; ok {
		v = d.value
	}
	switch c.kindOf(k) {
	case kindList:
		var l []string
		switch v := v.(type) {
		case []string:
			l = v
		case string:
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					l = append(l, e)
				}
			}
		}
		if len(l) == 0 {
			return fmt.Sprintf("  %s: []\n", k.Name)
		}
		s := fmt.Sprintf("  %s:\n", k.Name)
		for _, e := range l {
			s += "    - " + yamlString(e) + "\n"
		}
		return s
	case kindString:
		return fmt.Sprintf("  %s: %s\n", k.Name, yamlString(fmt.Sprint(v)))
	case kindBool:
		if v == "" {
			v = "false"
		}
	case kindDuration:
		if s, ok := v.(string); ok && !bareDuration.MatchString(s) {
			v = yamlString(s)
		}
	case kindFloat:
		if k.Kind == config.KindString { // a string in the key table and the example file
			v = strconv.Quote(fmt.Sprint(v))
		}
	}
	return fmt.Sprintf("  %s: %v\n", k.Name, v)
}

var (
	bareDuration = regexp.MustCompile(`^[0-9][0-9a-z.]*$`)
	bareString   = regexp.MustCompile(`^[A-Za-z/][A-Za-z0-9_./-]*$`)
)

// yamlString writes s as a YAML scalar that reads back as the string s.
func yamlString(s string) string {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
		return strconv.Quote(s)
	}
	if bareString.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}
