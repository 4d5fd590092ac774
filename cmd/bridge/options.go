package main

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// setInterfaceOptions copies the interface rules of c into o.
func setInterfaceOptions(o *discover.Options, c *config.Config) {
	o.Whitelist, o.Blacklist = c.Whitelist, c.Blacklist
	o.InterfaceRegex, o.InterfaceSkipRegex = c.InterfaceRegex, c.InterfaceSkipRegex
	o.InterfaceCIDRs, o.InterfaceCanReach = c.InterfaceCIDRs, c.InterfaceCanReach
	o.SkipContainerInterfaces = c.SkipContainerInterfaces
}

// interfaceDecisions lists the host's interfaces and applies the
// configuration's interface rules, as a round would (the can-reach route
// is looked up; nothing is sent).
func interfaceDecisions(c *config.Config) (all []iface.Interface, ds []iface.Decision, err error) {
	var o discover.Options
	setInterfaceOptions(&o, c)
	sel, err := o.InterfaceRules().Compile()
	if err != nil {
		return nil, nil, usageErr(err)
	}
	all, err = iface.OS().Interfaces()
	if err != nil {
		return nil, nil, runtimeErr(fmt.Errorf("list interfaces: %w", err))
	}
	return all, sel.Decide(all, iface.OSRouter()), nil
}

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
	}
	setInterfaceOptions(&o, c)
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
