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
	// BridgeID and Segment say who this bridge is (bridge_id, segment), for
	// sinks that label what they export (file_format prometheus).
	BridgeID string
	Segment  string
	// AppCheck is set when the bridge runs app checks (app_check is not
	// none): every endpoint's Check then carries the check's verdict, and
	// sinks that keep a check of their own per server (Consul) add it.
	// Without app checks every Check is the zero value (Ready) and says
	// nothing, so such sinks leave it out.
	AppCheck bool
}

// Factory makes one kind of sink: its name (the value of --sink), its
// settings and its constructor. A sink joins the bridge with one Factory in
// the registry (internal/sink/builtin); its name, flags, environment
// variables, help and validation then follow from it. A Factory holds no
// loaded values: the configuration carries each sink's settings
// (config.Config.SinkSettings), so a Config loaded with the Schema of one
// Registry builds with any other holding the same factories. NewFactory
// makes one with typed settings.
type Factory struct {
	Name string
	// Section declares the sink's keys; the configuration loads and
	// validates it and keeps the value its Load returns. Nil when the sink
	// has no settings.
	Section config.Section
	// Build builds the sink from the settings its Section loaded (nil when
	// it has none).
	Build func(settings any, deps Deps) (Sink, error)
	// Doctor, when set, tries with the loaded settings what the sink needs
	// of its registry without changing anything the sink does not own,
	// prints a line per operation to w and reports whether all succeeded
	// (`bridge doctor`).
	Doctor func(ctx context.Context, settings any, w io.Writer) (bool, error)
}

// Section is a sink's part of the configuration with settings of type T:
// its keys, and a Load that reads, validates and returns them.
type Section[T any] interface {
	// Keys declares the section's keys, defaults included.
	Keys() []config.Key
	// Load reads the section's values through r, reports every problem
	// through r and returns the settings.
	Load(r *config.Reader) T
}

// NewFactory makes the Factory of sink name whose section loads settings of
// type T: build, and doctor when not nil, receive the value section's Load
// returned with the configuration.
func NewFactory[T any](name string, section Section[T], build func(T, Deps) (Sink, error), doctor func(context.Context, T, io.Writer) (bool, error)) Factory {
	f := Factory{Name: name, Section: typedSection[T]{section}, Build: func(settings any, d Deps) (Sink, error) {
		t, err := settingsOf[T](name, settings)
		if err != nil {
			return nil, err
		}
		return build(t, d)
	}}
	if doctor != nil {
		f.Doctor = func(ctx context.Context, settings any, w io.Writer) (bool, error) {
			t, err := settingsOf[T](name, settings)
			if err != nil {
				return false, err
			}
			return doctor(ctx, t, w)
		}
	}
	return f
}

// typedSection is a Section[T] seen as a config.Section.
type typedSection[T any] struct{ s Section[T] }

func (t typedSection[T]) Keys() []config.Key        { return t.s.Keys() }
func (t typedSection[T]) Load(r *config.Reader) any { return t.s.Load(r) }

// settingsOf returns v as sink name's settings of type T.
func settingsOf[T any](name string, v any) (T, error) {
	t, ok := v.(T)
	if !ok {
		return t, fmt.Errorf("sink %s: settings are %T, want %T: the configuration was loaded without this sink's section", name, v, t)
	}
	return t, nil
}

// Doctor runs the Doctor of every sink cfg names that has one, with the
// settings cfg carries, and reports whether all their operations
// succeeded.
func (r *Registry) Doctor(ctx context.Context, cfg *config.Config, w io.Writer) (bool, error) {
	ok := true
	for _, name := range cfg.Sinks {
		i := slices.IndexFunc(r.factories, func(f Factory) bool { return f.Name == name })
		if i < 0 || r.factories[i].Doctor == nil {
			continue
		}
		fok, err := r.factories[i].Doctor(ctx, cfg.SinkSettings(name), w)
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
		if f.Name == "" || f.Build == nil || seen[f.Name] {
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

// Build creates the sinks cfg names, in its order, each from the settings
// cfg carries for it. cfg must have been loaded with the Schema of a
// registry of the same factories (this one's or another's: r keeps no
// loaded values). Each sink's logger gets the field sink=<name>.
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
		s, err := r.factories[i].Build(cfg.SinkSettings(name), d) // errors name the sink's keys
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
