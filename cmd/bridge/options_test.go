package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

func TestDiscoverOptionsSecretNeverInErrors(t *testing.T) {
	const secret = "very-secret-token-value"
	c := loadTestConfig(t, "DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "true", "DISCOVERY_CLIENT_SECRET_KEY", secret)
	_, err := c.DiscoveryOptions()
	if err == nil || strings.Contains(err.Error(), secret) || !errors.Is(err, discover.ErrInvalidKey) {
		t.Fatalf("DiscoveryOptions error = %v; want ErrInvalidKey without the key", err)
	}
}

func TestDiscoverOptionsKeyFile(t *testing.T) {
	key, err := discover.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := loadTestConfig(t, "DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "true", "DISCOVERY_CLIENT_SECRET_KEY_FILE", path)
	o, err := c.DiscoveryOptions()
	if err != nil || o.Key == nil {
		t.Fatalf("DiscoveryOptions = %v, key %v", err, o.Key)
	}
	c = loadTestConfig(t, "DISCOVERY_CLIENT_ENCRYPTION_ENABLED", "true", "DISCOVERY_CLIENT_SECRET_KEY_FILE", filepath.Join(t.TempDir(), "missing"))
	if _, err := c.DiscoveryOptions(); err == nil || !strings.Contains(err.Error(), "env DISCOVERY_CLIENT_SECRET_KEY_FILE") {
		t.Fatalf("missing key file error = %v", err)
	}
}
