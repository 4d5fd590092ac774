package config_test

import (
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// section is a sink's section that reads read when it loads.
type section struct{ read string }

func (s section) Keys() []config.Key {
	return []config.Key{{Name: "demo_path", Flag: "demo-path", Env: []string{"DEMO_PATH"}, Group: config.GroupRun}}
}

func (s section) Load(r *config.Reader) any {
	return struct{ Path, Segment string }{r.String(s.read), r.Core().Segment}
}

// TestSectionReadsOnlyItsKeys: a section reads its own keys, and the core
// keys (bridge_id, segment, on_exit, ...) through Reader.Core, resolved
// once; reading any other key is a programming error that panics, naming
// the section and the key.
func TestSectionReadsOnlyItsKeys(t *testing.T) {
	load := func(read string) *config.Config {
		c, err := config.NewSchema(config.SinkSpec{Name: "demo", Section: section{read: read}}).
			Load(config.Inputs{Flags: map[string]any{"sinks": []string{"demo"}, "demo_path": "/x", "segment": "hall-3", "bridge_id": "b-1"}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := load("demo_path")
	if got := c.SinkSettings("demo").(struct{ Path, Segment string }); got.Path != "/x" || got.Segment != "hall-3" || c.BridgeID != "b-1" || c.OnExit != config.OnExitDeregister {
		t.Fatalf("settings %+v, bridge_id %q, on_exit %q", got, c.BridgeID, c.OnExit)
	}
	for _, key := range []string{"segment", "interval", "consul_service"} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "section demo reads key "+key+", which it does not declare") {
					t.Errorf("reading %s: recovered %q, want a panic naming the section and the key", key, msg)
				}
			}()
			load(key)
		}()
	}
}

// TestBridgeIDDefaultsToTheHostName: bridge_id is resolved once, for
// every sink: the host name when unset; a host name that cannot be read is
// a problem of bridge_id.
func TestBridgeIDDefaultsToTheHostName(t *testing.T) {
	c, err := config.NewSchema().Load(config.Inputs{Hostname: func() (string, error) { return "node-7", nil }})
	if err != nil || c.BridgeID != "node-7" {
		t.Fatalf("bridge_id %q, %v; want the host name", c.BridgeID, err)
	}
	_, err = config.NewSchema().Load(config.Inputs{Hostname: func() (string, error) { return "", errHost }})
	if err == nil || !strings.Contains(err.Error(), "bridge_id") || !strings.Contains(err.Error(), "host name") {
		t.Fatalf("error %v, want one naming bridge_id and the host name", err)
	}
}

var errHost = errString("uname failed")

type errString string

func (e errString) Error() string { return string(e) }
