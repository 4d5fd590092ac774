package discover

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// TestKeysBoundNewAsTheyBoundTheEnvironment: for every discovery key with
// bounds, a value just outside them is refused by LoadOptions (from the
// environment) and, set in code, by New, both naming the key.
func TestKeysBoundNewAsTheyBoundTheEnvironment(t *testing.T) {
	outside := map[string]struct {
		env  string
		code any
	}{
		"timeout":                {"11m", 11 * time.Minute},
		"retries":                {"101", 101},
		"scan_rate":              {"0", 0},
		"max_token_age":          {"-1s", -time.Second},
		"clock_skew":             {"-1s", -time.Second},
		"settle":                 {"-1s", -time.Second},
		"max_replies":            {"0", 0},
		"max_servers_per_source": {"-1", -1},
	}
	l := iface.ListerFunc(func() ([]iface.Interface, error) { return nil, nil })
	for _, k := range Keys() {
		if k.Min == "" && k.Max == "" {
			continue
		}
		v, ok := outside[k.Name]
		if !ok {
			t.Errorf("%s has bounds %q..%q but no case here", k.Name, k.Min, k.Max)
			continue
		}
		if _, err := LoadOptions(env{k.Env[0]: v.env}.lookup); err == nil || !strings.Contains(err.Error(), k.Name+" (env "+k.Env[0]+")") {
			t.Errorf("%s=%s: LoadOptions = %v", k.Env[0], v.env, err)
		}
		o := DefaultOptions()
		o.SubnetScan, o.ScanCIDRs = true, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}
		var ve *setting.ValueError
		if err := o.Set(k.Name, v.code); !errors.As(err, &ve) {
			t.Errorf("Set(%s, %v) = %v, want a *setting.ValueError", k.Name, v.code, err)
		}
		// A program may still write the field itself.
		if err := fieldNamed(k.Name).set(&o, v.code); err != nil {
			t.Fatal(err)
		}
		if _, err := New(o, l, nil, nil); err == nil || !strings.Contains(err.Error(), k.Name+":") {
			t.Errorf("%s = %v: New = %v", k.Name, v.code, err)
		}
	}
}

// TestSetFillsOptions: Set stores each key's parsed default as
// DefaultOptions holds it, and refuses the keys of the Fernet key's
// source and unknown names.
func TestSetFillsOptions(t *testing.T) {
	var o Options
	o.MaxDatagram, o.RecvBuffer = DefaultMaxDatagram, DefaultRecvBuffer
	for _, k := range Keys() {
		v, err := k.Parse(k.Default)
		if err != nil {
			t.Fatalf("default of %s: %v", k.Name, err)
		}
		err = o.Set(k.Name, v)
		switch k.Name {
		case keyEncryption, keySecret, keySecretFile:
			if !errors.Is(err, ErrNoField) {
				t.Errorf("Set(%s) = %v, want ErrNoField", k.Name, err)
			}
		default:
			if err != nil {
				t.Errorf("Set(%s, %v) = %v", k.Name, v, err)
			}
		}
	}
	if err := o.Set("no_such_key", 1); !errors.Is(err, ErrNoField) {
		t.Errorf("Set(no_such_key) = %v", err)
	}
	d := DefaultOptions()
	if o.Port != d.Port || string(o.Message) != string(d.Message) || o.Timeout != d.Timeout || o.Retries != d.Retries ||
		o.SubnetScan != d.SubnetScan || o.AddressFrom != d.AddressFrom || o.MaxTokenAge != d.MaxTokenAge || o.MaxReplies != d.MaxReplies {
		t.Errorf("Set of the defaults = %+v\nwant %+v", o, d)
	}
}
