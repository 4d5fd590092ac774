package discover

import (
	"fmt"
	"strings"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Selected returns the interfaces a round would probe: the lister's
// interfaces chosen by the interface rules of Options (see iface.Rules for
// the order they are applied in). None is ErrNoInterfaces, wrapped with
// what was listed and why each was skipped.
func (c *Client) Selected() ([]iface.Interface, error) {
	_, sel, err := c.selected()
	return sel, err
}

// Decisions returns what the interface rules make of every interface
// address the lister lists: taken or skipped, under which rule and why (the
// listing `bridge interfaces` prints). With InterfaceCanReach set it looks
// the route up (nothing is sent).
func (c *Client) Decisions() ([]iface.Decision, error) {
	all, err := c.lister.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	return c.sel.Decide(all, c.router), nil
}

func (c *Client) selected() (all, sel []iface.Interface, err error) {
	all, err = c.lister.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	ds := c.sel.Decide(all, c.router)
	sel = iface.Taken(ds)
	if len(sel) == 0 {
		return all, nil, fmt.Errorf("%w: listed [%s]", ErrNoInterfaces, describe(ds))
	}
	return all, sel, nil
}

// describe lists interface decisions for an error message: name, address
// and why selection skips it, under which rule.
func describe(ds []iface.Decision) string {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		s := d.Name + " " + d.Addr.String()
		if !d.Taken {
			s += " (" + d.Rule + ": " + d.Reason + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
