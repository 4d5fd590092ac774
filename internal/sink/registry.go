package sink

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Deps are what the bridge hands every sink it builds.
type Deps struct {
	// Log already carries the sink's name (field "sink").
	Log zerolog.Logger
	// Clock is the bridge's clock.
	Clock clock.Clock
	// Out is the process's standard output.
	Out io.Writer
	// Once is set for `run --once`: one round, apply, exit.
	Once bool
	// Registerer takes the sink's own metrics (nil: none).
	Registerer prometheus.Registerer
}

// Factory makes one kind of sink: its name (the value of --sink), its
// settings and its constructor. A sink joins the bridge with one Factory in
// the registry (internal/sink/builtin); its name, flags, environment variables, help
// and validation then follow from it.
type Factory struct {
	Name string
	// Section holds the sink's settings; the configuration loads and
	// validates it before New is called. Nil when the sink has none.
	Section config.Section
	// New builds the sink from its loaded Section.
	New func(Deps) (Sink, error)
	// Doctor, when set, tries with the loaded Section what the sink needs
	// of its registry without changing anything the sink does not own,
	// prints a line per operation to w and reports whether all succeeded
	// (`bridge doctor`).
	Doctor func(ctx context.Context, w io.Writer) (bool, error)
}

// Doctor runs the Doctor of every sink cfg names that has one and reports
// whether all their operations succeeded.
func (r *Registry) Doctor(ctx context.Context, cfg *config.Config, w io.Writer) (bool, error) {
	ok := true
	for _, name := range cfg.Sinks {
		i := slices.IndexFunc(r.factories, func(f Factory) bool { return f.Name == name })
		if i < 0 || r.factories[i].Doctor == nil {
			continue
		}
		fok, err := r.factories[i].Doctor(ctx, w)
		if err != nil {
			return false, fmt.Errorf("sink %s: %w", name, err)
		}
		ok = ok && fok
	}
	return ok, nil
}

// Registry maps sink names to their factories, in registration order.
type Registry struct {
	factories []Factory
}

// NewRegistry returns a registry of factories. It panics on an empty or
// duplicate name: that is a programming error caught by the build's tests.
func NewRegistry(factories ...Factory) *Registry {
	seen := map[string]bool{}
	for _, f := range factories {
		if f.Name == "" || f.New == nil || seen[f.Name] {
			panic(fmt.Sprintf("sink: bad or duplicate factory %q", f.Name))
		}
		seen[f.Name] = true
	}
	return &Registry{factories: slices.Clone(factories)}
}

// Names lists the registered sink names.
func (r *Registry) Names() []string {
	names := make([]string, len(r.factories))
	for i, f := range r.factories {
		names[i] = f.Name
	}
	return names
}

// Schema is the configuration surface of a bridge with these sinks: the
// core keys and each sink's section.
func (r *Registry) Schema() *config.Schema {
	specs := make([]config.SinkSpec, len(r.factories))
	for i, f := range r.factories {
		specs[i] = config.SinkSpec{Name: f.Name, Section: f.Section}
	}
	return config.NewSchema(specs...)
}

// Build creates the sinks cfg names, in its order. cfg must have been loaded
// with r.Schema(), which loads every section. Each sink's logger gets the
// field sink=<name>.
func (r *Registry) Build(cfg *config.Config, deps Deps) ([]Sink, error) {
	out := make([]Sink, 0, len(cfg.Sinks))
	for _, name := range cfg.Sinks {
		i := slices.IndexFunc(r.factories, func(f Factory) bool { return f.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("sinks: unknown sink %q: want one of %s", name, strings.Join(r.Names(), ", "))
		}
		d := deps
		d.Log = deps.Log.With().Str("sink", name).Logger()
		d.Clock = clock.OrReal(d.Clock)
		s, err := r.factories[i].New(d) // errors name the sink's keys
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
