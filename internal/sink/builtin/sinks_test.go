package builtin_test

import (
	"context"
	"io"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
)

// TestSchemaAndBuildFromTwoRegistries: the built-in sinks load with one
// registry's schema and build with another registry (no network call: the
// Consul sink talks to Consul only once started).
func TestSchemaAndBuildFromTwoRegistries(t *testing.T) {
	cfg, err := builtin.Registry().Schema().Load(config.Inputs{Flags: map[string]any{
		"sinks": []string{"consul", "stdout"}, "bridge_id": "b1", "consul_addr": "127.0.0.1:1", "consul_service": "lab"}})
	if err != nil {
		t.Fatal(err)
	}
	if cc, ok := cfg.SinkSettings("consul").(consul.Config); !ok || cc.Service != "lab" || cc.BridgeID != "b1" {
		t.Fatalf("consul settings: %#v", cfg.SinkSettings("consul"))
	}
	sinks, err := builtin.Registry().Build(cfg, sink.Deps{Log: zerolog.Nop(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks) != 2 || sinks[0].Name() != "consul" || sinks[1].Name() != "stdout" {
		t.Fatalf("built %v", sinks)
	}
	for _, s := range sinks {
		_ = s.Close(context.Background())
	}
}
