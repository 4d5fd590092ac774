package sink

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// FileSection is the file sink's part of the configuration.
type FileSection struct {
	Path string
	// origin is "file_path (<source>)", for errors raised when the sink is
	// built.
	origin string
}

// Keys implements config.Section.
func (s *FileSection) Keys() []config.Key {
	return []config.Key{
		{Name: "file_path", Flag: "file-path", Env: []string{"DISCOVERY_CLIENT_FILE_PATH"}, Group: config.GroupRun, Category: "File sink",
			Usage: "file sink: JSON document to keep up to date"},
	}
}

// Load implements config.Section: the path is needed when the sink is on.
func (s *FileSection) Load(r *config.Reader) {
	s.Path = r.String("file_path")
	s.origin = r.Origin("file_path")
	if r.Enabled() && s.Path == "" {
		r.Report(fmt.Errorf("%s: the file sink needs file_path (--file-path or DISCOVERY_CLIENT_FILE_PATH)", r.Origin("sinks")))
	}
}

// FileFactory registers the file sink.
func FileFactory() Factory {
	s := &FileSection{}
	return Factory{Name: "file", Section: s, New: func(d Deps) (Sink, error) {
		f, err := NewFile(s.Path, d.Clock)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.origin, err)
		}
		return f, nil
	}}
}
