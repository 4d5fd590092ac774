package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// nullSection is the section of a sink that exists only in this test; its
// settings are the label.
type nullSection struct{}

func (nullSection) Keys() []config.Key {
	return []config.Key{{Name: "null_label", Flag: "null-label", Env: []string{"TEST_NULL_LABEL"}, Default: "none",
		Group: config.GroupRun, Category: "Null sink", Usage: "label of the null sink"}}
}

func (nullSection) Load(r *config.Reader) string {
	label := r.String("null_label")
	if label == "bad" {
		r.Report(&config.KeyError{Key: "null_label", Value: label, Why: "must not be bad"})
	}
	return label
}

type nullSink struct{ applied *int }

func (n nullSink) Name() string { return "null" }
func (n nullSink) Apply(context.Context, endpoint.Snapshot) (sink.Result, error) {
	*n.applied++
	return sink.Result{}, nil
}
func (n nullSink) Close(context.Context) error { return nil }

// TestRegistryIsAllItTakes adds a sink to the registry and nothing else:
// --sink accepts it, --help lists it and its flag, its settings are loaded
// and validated, and an unknown sink is rejected with the valid names.
func TestRegistryIsAllItTakes(t *testing.T) {
	var built []string
	applied := 0
	newReg := func() *sink.Registry {
		return sink.NewRegistry(sink.StdoutFactory(), sink.FileFactory(), sink.NewFactory("null", nullSection{},
			func(label string, _ sink.Deps) (sink.Sink, error) {
				built = append(built, label)
				return nullSink{applied: &applied}, nil
			}, nil))
	}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runWith(context.Background(), newReg(), append([]string{"bridge"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, _ := cli("run", "--help")
	if code != 0 || !strings.Contains(out, "stdout, file, null") || !strings.Contains(out, "--null-label") || !strings.Contains(out, "Null sink") {
		t.Errorf("run --help (exit %d) does not list the null sink and its flag:\n%s", code, out)
	}

	code, _, stderr := cli("run", "--sink", "consul")
	if code != exitUsage || !strings.Contains(stderr, `sinks (flag --sink): bad value "consul": want one of stdout, file, null`) {
		t.Errorf("unknown sink: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = cli("run", "--sink", "null", "--null-label", "bad")
	if code != exitUsage || !strings.Contains(stderr, `null_label (flag --null-label): bad value "bad": must not be bad`) {
		t.Errorf("bad null_label: exit %d, stderr %q", code, stderr)
	}

	// Accepted: built from its loaded section. The whitelist names no
	// interface, so the round fails before any packet is sent (a failed
	// round, not a configuration error).
	code, _, stderr = cli("run", "--once", "--sink", "null", "--null-label", "lab-1", "--whitelist", "no-such-if0", "--metrics-addr", "")
	if strings.Contains(stderr, "invalid configuration") || len(built) != 1 || built[0] != "lab-1" {
		t.Errorf("--sink null: exit %d, built %v; stderr %s", code, built, stderr)
	}
}
