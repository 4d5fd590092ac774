package discover

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func TestRoundNoInterfaces(t *testing.T) {
	tests := []struct {
		name      string
		whitelist []string
		blacklist []string
	}{
		{"only loopback", nil, nil},
		{"whitelist matches nothing", []string{"eth9"}, nil},
		{"blacklist removes all", nil, []string{"fake2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l iface.Lister = lister(t)
			if tc.name != "only loopback" {
				l = lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))
			}
			o := testOptions(freePort(t))
			o.Whitelist, o.Blacklist = tc.whitelist, tc.blacklist
			c := newClient(t, o, l, zerolog.Nop())
			_, err := c.Round(context.Background())
			if !errors.Is(err, ErrNoInterfaces) || !strings.Contains(err.Error(), "lo 127.0.0.1 (loopback)") {
				t.Fatalf("Round = %v, want ErrNoInterfaces listing what exists", err)
			}
			if _, err := c.Selected(); !errors.Is(err, ErrNoInterfaces) {
				t.Errorf("Selected = %v", err)
			}
		})
	}
	t.Run("lister fails", func(t *testing.T) {
		boom := errors.New("netlink: boom")
		c := newClient(t, testOptions(1), iface.ListerFunc(func() ([]iface.Interface, error) { return nil, boom }), zerolog.Nop())
		if _, err := c.Round(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("Round = %v", err)
		}
	})
}
