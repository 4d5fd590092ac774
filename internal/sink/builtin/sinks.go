// Package builtin lists the sinks built into the bridge. Adding a sink is one
// line here: its name, flags, environment variables, --help text and
// validation follow from its sink.Factory.
package builtin

import (
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes"
)

// Registry returns a registry of the built-in sinks. It keeps no loaded
// values: any such registry builds from a Config loaded with the Schema of
// another.
func Registry() *sink.Registry {
	return sink.NewRegistry(
		sink.StdoutFactory(),
		sink.FileFactory(),
		consul.Factory(),
		kubernetes.Factory(),
	)
}
