package main

import (
	"fmt"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

// bridgeIdentity is what Prometheus target labels say of this bridge: the
// core keys bridge_id (defaulted to the host name) and segment (when
// empty, each server's segment is the network it was seen on).
func bridgeIdentity(cfg *config.Config) promsd.Identity {
	return promsd.Identity{BridgeID: cfg.BridgeID, Segment: cfg.Segment}
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

// promSD is the http_sd endpoint as `bridge run` serves it.
type promSD struct {
	// targets is fed by the runner; nil when prometheus_sd is off.
	targets *promsd.Targets
	// metrics is what metrics_addr serves: its handler, plus
	// promsd.Path unless the endpoint has an address of its own.
	metrics http.Handler
	// own is what prometheus_sd_addr serves (promsd.Path alone); nil
	// without an address of its own.
	own http.Handler
}

// newPromSD builds the http_sd endpoint of cfg labelled with id beside h,
// the metrics server's handler. An unreadable or empty token file is an
// error.
func newPromSD(cfg *config.Config, id promsd.Identity, h http.Handler, log zerolog.Logger) (promSD, error) {
	if !cfg.PrometheusSD.Enabled {
		return promSD{metrics: h}, nil
	}
	token, err := promSDToken(cfg)
	if err != nil {
		return promSD{}, err
	}
	sd := promSD{targets: promsd.NewTargets(id, promsd.Selection(cfg.PrometheusSD.Targets))}
	path := http.NewServeMux()
	path.Handle(promsd.Path, sd.targets.Handler(token, log))
	if cfg.PrometheusSD.Addr != "" {
		sd.metrics, sd.own = h, path
		return sd, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle(promsd.Path, path)
	sd.metrics = mux
	return sd, nil
}
