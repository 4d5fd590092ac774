package main

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// interfaceDecisions lists the host's interfaces and applies the
// configuration's interface rules, as a round would (the can-reach route
// is looked up; nothing is sent).
func interfaceDecisions(c *config.Config) (all []iface.Interface, ds []iface.Decision, err error) {
	sel, err := c.Discovery.InterfaceRules().Compile()
	if err != nil {
		return nil, nil, usageErr(err)
	}
	all, err = iface.OS().Interfaces()
	if err != nil {
		return nil, nil, runtimeErr(fmt.Errorf("list interfaces: %w", err))
	}
	return all, sel.Decide(all, iface.OSRouter()), nil
}
