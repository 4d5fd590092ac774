package main

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/pkg/config"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// discoverOptions maps the loaded configuration to discovery options. It
// reads and parses the Fernet key when encryption is on; a missing or
// invalid key is an error (never a silent fall back to plaintext), and the
// error never holds the key.
func discoverOptions(c *config.Config) (discover.Options, error) {
	o := discover.Options{
		Port:        c.Port,
		Message:     []byte(c.Message),
		Prefix:      []byte(c.ResponsePrefix),
		Timeout:     c.Timeout,
		Retries:     c.Retries,
		DefaultPort: c.DefaultPort,
		AddressFrom: discover.AddressPolicy(c.AddressFrom),
		Settle:      c.Settle,
		SubnetScan:  c.EnableSubnetScan,
		ScanCIDRs:   c.ScanCIDRs,
		ScanRate:    c.ScanRate,
		MaxReplies:  c.MaxReplies,
		MaxTokenAge: c.MaxTokenAge,
		ClockSkew:   c.ClockSkew,
		Whitelist:   c.Whitelist,
		Blacklist:   c.Blacklist,
	}
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
