package discover

import (
	"fmt"
	"strings"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Selected returns the interfaces a round would probe: the lister's
// interfaces filtered by iface.Select with the whitelist and blacklist. None
// is ErrNoInterfaces, wrapped with what was listed and the filters.
func (c *Client) Selected() ([]iface.Interface, error) {
	_, sel, err := c.selected()
	return sel, err
}

func (c *Client) selected() (all, sel []iface.Interface, err error) {
	all, err = c.lister.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	sel = iface.Select(all, c.opts.Whitelist, c.opts.Blacklist)
	if len(sel) == 0 {
		return all, nil, fmt.Errorf("%w: listed [%s], whitelist %q, blacklist %q",
			ErrNoInterfaces, describe(all), c.opts.Whitelist, c.opts.Blacklist)
	}
	return all, sel, nil
}

// describe lists interfaces for an error message: name, address and why
// selection skips it.
func describe(all []iface.Interface) string {
	parts := make([]string, 0, len(all))
	for _, i := range all {
		s := i.Name + " " + i.Addr.String()
		switch {
		case !i.Up:
			s += " (down)"
		case i.Loopback:
			s += " (loopback)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
