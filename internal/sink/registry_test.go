package sink_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
)

// labelSection is a test sink's section: its settings are a label.
type labelSection struct{}

func (labelSection) Keys() []config.Key {
	return []config.Key{{Name: "label", Flag: "label", Env: []string{"TEST_LABEL"}, Default: "none",
		Group: config.GroupRun, Category: "Label sink", Usage: "label of the test sink"}}
}

func (labelSection) Load(r *config.Reader) string { return r.String("label") }

type labelSink struct{ label string }

func (labelSink) Name() string { return "label" }
func (labelSink) Apply(context.Context, endpoint.Snapshot) (sink.Result, error) {
	return sink.Result{}, nil
}
func (labelSink) Close(context.Context) error { return nil }

func newRegistry() *sink.Registry {
	return sink.NewRegistry(sink.StdoutFactory(), sink.FileFactory(), sink.NewFactory("label", labelSection{},
		func(label string, _ sink.Deps) (sink.Sink, error) { return labelSink{label: label}, nil },
		func(_ context.Context, label string, w io.Writer) (bool, error) {
			_, err := io.WriteString(w, "label "+label+"\n")
			return true, err
		}))
}

// TestBuildFromAnotherRegistry: the loaded Config carries each sink's
// settings, so a registry built anew builds (and doctors) the sinks from a
// Config loaded with another registry's schema; a registry keeps nothing.
func TestBuildFromAnotherRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	cfg, err := newRegistry().Schema().Load(config.Inputs{Flags: map[string]any{
		"sinks": []string{"label", "file", "stdout"}, "label": "lab-1", "file_path": path}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.SinkSettings("label"); got != "lab-1" {
		t.Errorf("SinkSettings(label) = %v", got)
	}
	if got, ok := cfg.SinkSettings("file").(sink.FileSettings); !ok || got.Path != path {
		t.Errorf("SinkSettings(file) = %#v", cfg.SinkSettings("file"))
	}
	sinks, err := newRegistry().Build(cfg, sink.Deps{Log: zerolog.Nop(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks) != 3 || sinks[0].(labelSink).label != "lab-1" || sinks[1].Name() != "file" || sinks[2].Name() != "stdout" {
		t.Errorf("built %#v", sinks)
	}
	var out bytes.Buffer
	if ok, err := newRegistry().Doctor(context.Background(), cfg, &out); !ok || err != nil || out.String() != "label lab-1\n" {
		t.Errorf("Doctor = %v, %v; printed %q", ok, err, out.String())
	}
}

// TestBuildWithoutTheSection: a Config loaded by a schema that lacks a
// sink's section carries no settings for it, and Build says so instead of
// building a sink with zero settings.
func TestBuildWithoutTheSection(t *testing.T) {
	cfg, err := sink.NewRegistry(sink.StdoutFactory(), sink.NewFactory("label", labelSection{},
		func(string, sink.Deps) (sink.Sink, error) { return labelSink{}, nil }, nil)).Schema().Load(config.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sinks = []string{"file"}
	_, err = newRegistry().Build(cfg, sink.Deps{Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "sink file: settings are <nil>, want sink.FileSettings") {
		t.Errorf("Build = %v", err)
	}
}
