package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
)

// bridgeIdentity is what Prometheus target labels say of this bridge: the
// bridge_id and segment keys. Both are declared by the Consul sink's
// section, which every configuration loads (bridge_id defaults to the host
// name there; segment is read in catalog mode, else each server's segment
// is the network it was seen on).
func bridgeIdentity(cfg *config.Config) promsd.Identity {
	if c, ok := cfg.SinkSettings("consul").(consul.Config); ok {
		return promsd.Identity{BridgeID: c.BridgeID, Segment: c.Catalog.Segment}
	}
	h, _ := os.Hostname()
	return promsd.Identity{BridgeID: h}
}

// promSDToken returns the bearer token source of the http_sd endpoint (nil
// when none is configured). A token file is read once here so that a
// missing or empty file stops start-up; it is read again at every request.
func promSDToken(cfg *config.Config) (promsd.Token, error) {
	sd := cfg.PrometheusSD
	switch {
	case sd.TokenFile != "":
		tok := promsd.TokenFile(sd.TokenFile)
		if _, err := tok(); err != nil {
			return nil, fmt.Errorf("prometheus_sd_token_file (%s) %s: %w", cfg.Source("prometheus_sd_token_file"), sd.TokenFile, err)
		}
		return tok, nil
	case sd.Token != "":
		return promsd.StaticToken(sd.Token), nil
	}
	return nil, nil
}

// withPromSD returns a handler serving h and, at promsd.Path, sd.
func withPromSD(h, sd http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle(promsd.Path, sd)
	return mux
}
