package sink

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// FileSection is the file sink's part of the configuration.
type FileSection struct{}

// FileSettings are the file sink's loaded settings.
type FileSettings struct {
	Path string
	// Format is FileFormatBridge or FileFormatPrometheus.
	Format string
	// Origin is "file_path (<source>)", for errors raised when the sink is
	// built.
	Origin string
	// SDTargets is the core's sd_targets: which servers the prometheus
	// format lists (config.SDTargetsReady or config.SDTargetsAll).
	SDTargets string
}

// The values of file_format.
const (
	// FileFormatBridge is the bridge's own document (FileDocument).
	FileFormatBridge = "bridge"
	// FileFormatPrometheus is Prometheus file_sd: the target groups the
	// http_sd endpoint serves (internal/promsd).
	FileFormatPrometheus = "prometheus"
)

// Keys implements Section.
func (FileSection) Keys() []config.Key {
	return []config.Key{
		{Name: "file_path", Flag: "file-path", Env: []string{"DISCOVERY_CLIENT_FILE_PATH"}, Group: config.GroupRun, Category: "File sink",
			Usage: "file sink: JSON document to keep up to date"},
		{Name: "file_format", Flag: "file-format", Env: []string{"DISCOVERY_CLIENT_FILE_FORMAT"}, Default: FileFormatBridge, OneOf: []string{FileFormatBridge, FileFormatPrometheus}, Group: config.GroupRun, Category: "File sink",
			Usage: "file sink: bridge (the bridge's document: updated_at and servers, with each server's health when app_check is on) or prometheus (file_sd target groups, as " + config.PrometheusSDPath + " serves: the servers sd_targets names)"},
	}
}

// Load implements Section: the path is needed when the sink is on.
func (FileSection) Load(r *config.Reader) FileSettings {
	s := FileSettings{Path: r.String("file_path"), Format: r.String("file_format"), Origin: r.Origin("file_path"),
		SDTargets: r.Core().PrometheusSD.Targets}
	if r.Enabled() && s.Path == "" {
		r.Report(fmt.Errorf("%s: the file sink needs file_path (--file-path or DISCOVERY_CLIENT_FILE_PATH)", r.Origin("sinks")))
	}
	return s
}

// FileFactory registers the file sink.
func FileFactory() Factory {
	return NewFactory("file", FileSection{}, func(s FileSettings, d Deps) (Sink, error) {
		newFile := NewFile
		if s.Format == FileFormatPrometheus {
			newFile = func(path string, clk clock.Clock) (*File, error) {
				return NewFileSD(path, clk, promsd.Identity{BridgeID: d.BridgeID, Segment: d.Segment}, promsd.Selection(s.SDTargets))
			}
		}
		f, err := newFile(s.Path, d.Clock)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Origin, err)
		}
		return f, nil
	}, nil)
}
