// Package config loads the bridge's configuration from built-in defaults, an
// optional YAML file, the environment and command-line flags (in rising
// priority), layered with koanf, and validates it once, reporting every
// problem with the key, the bad value and where it came from.
//
// The core keys (logging, discovery, the sidecar loop) fill Config. Every
// sink owns a Section: its keys, their defaults and its validation live in
// the sink's package, and a Schema joins the core with the sections of the
// sinks a build registers. Packages never see koanf.
package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Config is the validated core configuration.
type Config struct {
	LogLevel  string
	LogFormat string

	// Discovery holds the discovery keys' values (pkg/discover's Keys)
	// but the Fernet key: Encryption, SecretKey and SecretKeyFile say where
	// it comes from, and DiscoveryOptions reads it.
	Discovery     discover.Options
	Encryption    bool
	SecretKey     string // never log
	SecretKeyFile string

	Interval     time.Duration
	MissedRounds int
	// MaxRemovalFraction and RemovalGuardRounds tune the removal guard
	// (internal/plan): 1 or 0 respectively turn it off.
	MaxRemovalFraction float64
	RemovalGuardRounds int
	// RemovalGuardHeld is what the sinks say of a server whose removal
	// the guard holds: "ready" (fail open) or "unobserved".
	RemovalGuardHeld string
	// MaxServers caps the servers the bridge holds (max_servers); each
	// source's share is Discovery.MaxServersPerSource.
	MaxServers int
	// BridgeID, Segment and OnExit say who this bridge is and what it
	// leaves behind (bridge_id, defaulted to the host name; segment;
	// on_exit): core keys, resolved once and read by every sink through
	// Reader.Core.
	BridgeID    string
	Segment     string
	OnExit      string
	Sinks       []string
	MetricsAddr string
	// DebugEndpoint serves `bridge explain`'s reports on MetricsAddr
	// (debug_endpoint).
	DebugEndpoint bool
	// AppCheck holds the app check keys' values (pkg/appcheck's Keys):
	// how the bridge checks each server's app, which decides its
	// readiness in every sink. Its Kind is appcheck.None by default.
	AppCheck appcheck.Options
	// PrometheusSD configures the http_sd endpoint (prometheus_sd*).
	PrometheusSD PrometheusSD
	// Relay configures the relay (relay_*): off unless
	// Relay.Engine.Interfaces names an interface.
	Relay        Relay
	sources      map[string]string
	sinkSettings map[string]any // by sink name: what its Section loaded
}

// PrometheusSD is the http_sd endpoint's configuration.
type PrometheusSD struct {
	Enabled   bool
	Addr      string // own listen address; "" for metrics_addr
	Token     string // never log
	TokenFile string
	// Targets is sd_targets: SDTargetsReady (only ready servers, the
	// default) or SDTargetsAll (every held server, labelled with its
	// health). It applies to the http_sd list and to the file sink's
	// prometheus format alike.
	Targets string
}

// The values of sd_targets.
const (
	SDTargetsReady = "ready"
	SDTargetsAll   = "all"
)

// Source names where a key's effective value came from ("default",
// "flag --port", "env DISCOVERY_CLIENT_PORT", "file bridge.yaml"). It knows
// every key of the schema the Config was loaded with, sections included.
func (c *Config) Source(key string) string { return c.sources[key] }

// Fold records that key's value was taken from the key from (a deprecated
// key folded into its successor, such as consul_check_interval into
// app_check_interval): Source(key) then names from and where its value
// came from, "consul_check_interval, flag --consul-check-interval".
func (c *Config) Fold(key, from string) { c.sources[key] = from + ", " + c.Source(from) }

// Error collects every configuration problem found by Load.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

// Unwrap gives errors.Is/As access to each problem.
func (e *Error) Unwrap() []error { return e.Problems }

// ReadSecretKey returns the Fernet key text from secret_key or
// secret_key_file ("" when neither is set). Errors name the file, never the
// key.
func (c *Config) ReadSecretKey() (string, error) {
	if c.SecretKeyFile == "" {
		return strings.TrimSpace(c.SecretKey), nil
	}
	s, err := secretfile.Read("secret_key_file ("+c.Source("secret_key_file")+")", c.SecretKeyFile)
	if errors.Is(err, secretfile.ErrEmpty) {
		// An empty key file is the same mistake as no key: ParseKey says
		// what a key looks like.
		return "", nil
	}
	return s, err
}

// DiscoveryOptions returns Discovery with the Fernet key read and parsed
// when encryption is on: a missing or invalid key is an error (never a
// silent fall back to plaintext), and the error never holds the key.
func (c *Config) DiscoveryOptions() (discover.Options, error) {
	o := c.Discovery
	if !c.Encryption {
		return o, nil
	}
	text, err := c.ReadSecretKey()
	if err != nil {
		return o, err
	}
	key, err := discover.ParseKey(text)
	if err != nil {
		src := c.Source("secret_key")
		if c.SecretKeyFile != "" {
			src = c.Source("secret_key_file") + " " + c.SecretKeyFile
		}
		return o, fmt.Errorf("secret_key (%s): %w", src, err)
	}
	o.Key = key
	return o, nil
}
