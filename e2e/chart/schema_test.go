package chart_test

import (
	"strings"
	"testing"
)

// TestChartSchemaRejects checks that values.schema.json refuses unknown
// keys and wrong types before anything is rendered.
func TestChartSchemaRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--set", "foo=bar"},                              // unknown top-level key
		{"--set", "image.tag={1,2}"},                      // a list for a string
		{"--set", "image.registry=docker.io"},             // unknown key under image
		{"--set", "config.discovery_port=ninety"},         // a string for a port
		{"--set", "config.discovery_port=70000"},          // out of range
		{"--set", "config.whitelist=eth0"},                // a flag's name, not the key
		{"--set", "config.interfaces_whitelist=eth0"},     // a string for a list
		{"--set", "config.consul_mode=agentless"},         // not a mode
		{"--set", "config.sinks={consul,kafka}"},          // not a sink
		{"--set", "netAdmin=yes"},                         // a string for a boolean
		{"--set-string", "metrics.port=9108"},             // a string for a port
		{"--set", "metrics.serviceMonitor.enabled=1"},     // a number for a boolean
		{"--set", "secretKey.secret=x"},                   // unknown key under secretKey
		{"--set", "config.max_removal_fraction=1.5"},      // above 1 (--set makes it a string)
		{"--set", "config.max_removal_fraction=0"},        // 0 is no fraction (an integer)
		{"--set-json", "config.max_removal_fraction=1.5"}, // above 1 as a number
		{"--set", "config.max_removal_fraction=50%"},      // a percentage
		{"--set", "config.removal_guard_rounds=-1"},       // negative
		{"--set", "config.consul_write_rate=fast"},        // not a rate
		{"--set", "config.consul_write_rate=-1"},          // negative
	} {
		_, errOut, err := helm(t, append([]string{"template", "r", chartDir(t)}, args...)...)
		if err == nil {
			t.Errorf("helm template %v succeeded; the schema must refuse it", args)
			continue
		}
		if !strings.Contains(errOut, "schema") {
			t.Errorf("helm template %v failed, but not on the schema:\n%s", args, errOut)
		}
	}
}
