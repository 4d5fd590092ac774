package chartgen

import (
	"fmt"
	"strconv"
	"strings"
)

// keysHeader explains templates/_keys.tpl.
const keysHeader = `{{/*
Generated from the bridge's key table by internal/chartgen
(` + UpdateCommand + `): edit the key table, not this file.

udb.keys: every key of .Values.config with the environment variable the
DaemonSet renders it as (the first the bridge reads), its kind and the
bridge's default; durations and decimal numbers also carry their bounds in
the key's own syntax, which _validate.tpl checks (values.schema.json checks
only their syntax when they are strings, such as "1ns" or "0.5").
*/}}
`

// keysTemplate renders templates/_keys.tpl.
func (c *Chart) keysTemplate() ([]byte, error) {
	var b strings.Builder
	b.WriteString(keysHeader)
	b.WriteString("{{- define \"udb.keys\" -}}\n")
	for _, k := range c.keys {
		kd := c.kindOf(k)
		fields := []string{"env: " + k.Env[0], "kind: " + string(kd), "default: " + strconv.Quote(k.Default)}
		if kd == kindDuration || kd == kindFloat {
			bd := BoundsOf(k)
			if bd.Min != "" {
				fields = append(fields, "min: "+strconv.Quote(bd.Min))
				if bd.MinExclusive {
					fields = append(fields, "minExclusive: true")
				}
			}
			if bd.Max != "" {
				fields = append(fields, "max: "+strconv.Quote(bd.Max))
			}
		}
		fmt.Fprintf(&b, "%s: {%s}\n", k.Name, strings.Join(fields, ", "))
	}
	b.WriteString("{{- end }}\n")
	return []byte(b.String()), nil
}
