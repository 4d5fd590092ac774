package sink

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// FileSection is the file sink's part of the configuration.
type FileSection struct{}

// FileSettings are the file sink's loaded settings.
type FileSettings struct {
	Path string
	// Origin is "file_path (<source>)", for errors raised when the sink is
	// built.
	Origin string
}

// Keys implements Section.
func (FileSection) Keys() []config.Key {
	return []config.Key{
		{Name: "file_path", Flag: "file-path", Env: []string{"DISCOVERY_CLIENT_FILE_PATH"}, Group: config.GroupRun, Category: "File sink",
			Usage: "file sink: JSON document to keep up to date"},
	}
}

// Load implements Section: the path is needed when the sink is on.
func (FileSection) Load(r *config.Reader) FileSettings {
	s := FileSettings{Path: r.String("file_path"), Origin: r.Origin("file_path")}
	if r.Enabled() && s.Path == "" {
		r.Report(fmt.Errorf("%s: the file sink needs file_path (--file-path or DISCOVERY_CLIENT_FILE_PATH)", r.Origin("sinks")))
	}
	return s
}

// FileFactory registers the file sink.
func FileFactory() Factory {
	return NewFactory("file", FileSection{}, func(s FileSettings, d Deps) (Sink, error) {
		f, err := NewFile(s.Path, d.Clock)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Origin, err)
		}
		return f, nil
	}, nil)
}
