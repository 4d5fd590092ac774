package config

import (
	"fmt"
	"strings"
)

// exampleHeadings spell out the headings of the core groups in the example
// file; a section's heading is its Category.
var exampleHeadings = map[string]string{
	"Global":    "Logging",
	"Discovery": "Discovery (upstream django-udp-discovery client names)",
	"Sidecar":   "Sidecar (bridge run)",
}

// Example renders bridge.example.yaml: every key of the schema with its
// usage, flag, environment variables and default, commented out.
func (s *Schema) Example() []byte {
	var b strings.Builder
	b.WriteString("# bridge.example.yaml: every configuration key of udp-discovery-bridge with its default.\n" +
		"# Priority: built-in defaults < this file (--config) < environment < flags.\n" +
		"# Durations take seconds as a number (5, 0.5) or a Go duration (500ms, 1m).\n" +
		"# Unknown keys are an error. Uncomment what you change.\n" +
		"# Generated from the key table: go test ./internal/config -run Example -update\n")
	title := ""
	for _, k := range s.keys {
		if t := k.Title(); t != title {
			title = t
			h := exampleHeadings[t]
			if h == "" {
				h = t
			}
			fmt.Fprintf(&b, "\n## %s\n", h)
		}
		fmt.Fprintf(&b, "\n# %s\n# flag --%s", k.Usage, k.Flag)
		if len(k.Env) > 0 {
			fmt.Fprintf(&b, ", env %s", strings.Join(k.Env, " or "))
		}
		fmt.Fprintf(&b, "\n# %s: %s\n", k.Name, exampleValue(k))
	}
	return []byte(b.String())
}

// exampleValue is k's default as YAML.
func exampleValue(k Key) string {
	switch k.Kind {
	case KindList:
		if k.Default == "" {
			return "[]"
		}
		return "[" + strings.ReplaceAll(k.Default, ",", ", ") + "]"
	case KindString:
		return fmt.Sprintf("%q", k.Default)
	}
	return k.Default
}

// MarkdownTable renders the keys titled title (Key.Title: "Discovery",
// "Sidecar", "File sink", ...) as the documentation's key table: key, flag,
// variables, default and meaning, one row per key.
func (s *Schema) MarkdownTable(title string) string {
	var b strings.Builder
	b.WriteString("| key | flag | env | default | meaning |\n|---|---|---|---|---|\n")
	for _, k := range s.keys {
		if k.Title() != title {
			continue
		}
		flag := "`--" + k.Flag + "`"
		if k.Kind == KindList {
			flag += " (repeat)"
		}
		def := "none"
		switch {
		case k.Default == "":
		case k.Kind == KindString:
			def = "`" + k.Default + "`"
		default:
			def = k.Default
		}
		cell := strings.NewReplacer("|", `\|`, "\n", " ")
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", k.Name, flag, strings.Join(k.Env, ", "), cell.Replace(def), cell.Replace(k.Usage))
	}
	return b.String()
}
