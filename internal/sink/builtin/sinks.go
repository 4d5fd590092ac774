// Package builtin lists the sinks built into the bridge. Adding a sink is one
// line here: its name, flags, environment variables, --help text and
// validation follow from its sink.Factory.
package builtin

import (
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
)

// Registry returns a fresh registry of the built-in sinks (each call makes
// new, empty configuration sections).
func Registry() *sink.Registry {
	return sink.NewRegistry(
		sink.StdoutFactory(),
		sink.FileFactory(),
		consul.Factory(),
	)
}
