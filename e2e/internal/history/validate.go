package history

import (
	"errors"
	"fmt"
	"time"
)

// Validate reports the first problem of events as a history: the first
// event is the one config, times never go back, every payload is well
// formed, and the servers and bridges the events name are the config's
// (reads may list any server: an unknown one is what a bug would add).
// The error names the event by its index.
func Validate(events []Event) error {
	var v validator
	for i, e := range events {
		if err := v.add(e); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return v.done()
}

// validator checks a history one event at a time, so Read can name the
// line of a problem.
type validator struct {
	cfg     *Config
	last    time.Time
	servers map[string]bool
	bridges map[string]bool
	faults  map[string]string // open fault ID → kind
}

func (v *validator) add(e Event) error {
	k, n := e.kinds()
	switch {
	case n == 0:
		return errors.New("no payload: want one of config, answers, bridge, registry, fault, read, term, write")
	case n > 1:
		return fmt.Errorf("%d payloads: want one", n)
	case e.At.IsZero():
		return fmt.Errorf("%s: no time (t)", k)
	case v.cfg == nil && k != KindConfig:
		return fmt.Errorf("%s before the config: a history starts with its config", k)
	case v.cfg != nil && k == KindConfig:
		return errors.New("a second config")
	case e.At.Before(v.last):
		return fmt.Errorf("%s at %s, before the previous event (%s)", k, e.At.Format(time.RFC3339Nano), v.last.Format(time.RFC3339Nano))
	}
	v.last = e.At
	if err := v.payload(e); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

func (v *validator) payload(e Event) error {
	switch {
	case e.Config != nil:
		return v.config(e.Config)
	case e.Answers != nil:
		return v.known(v.servers, "server", e.Answers.Server)
	case e.Bridge != nil:
		return v.bridge(e.Bridge)
	case e.Registry != nil:
		switch e.Registry.State {
		case RegistryUp, RegistryDown, RegistryWiped, RegistryLimited:
			return nil
		}
		return fmt.Errorf("state %q: want up, down, wiped or limited", e.Registry.State)
	case e.Fault != nil:
		return v.fault(e.Fault)
	case e.Read != nil:
		return read(e.Read)
	case e.Term != nil:
		return v.known(v.bridges, "bridge", e.Term.Bridge)
	default:
		if e.Write.Ops < 0 {
			return fmt.Errorf("ops %d: want 0 or more", e.Write.Ops)
		}
		return v.known(v.bridges, "bridge", e.Write.Bridge)
	}
}

func (v *validator) done() error {
	if v.cfg == nil {
		return errors.New("no config: a history starts with its config")
	}
	return nil
}

func (v *validator) known(set map[string]bool, what, name string) error {
	if !set[name] {
		return fmt.Errorf("%s %q is not in the config", what, name)
	}
	return nil
}

func (v *validator) config(c *Config) error {
	if err := c.check(); err != nil {
		return err
	}
	v.cfg = c
	v.servers, v.bridges, v.faults = map[string]bool{}, map[string]bool{}, map[string]string{}
	segs := map[string]bool{}
	for _, s := range c.Segments {
		if s.Name == "" || segs[s.Name] {
			return fmt.Errorf("segment name %q: want a name of its own", s.Name)
		}
		segs[s.Name] = true
		for _, l := range []struct {
			what  string
			names []string
			set   map[string]bool
		}{{"bridge", s.Bridges, v.bridges}, {"server", s.Servers, v.servers}} {
			for _, n := range l.names {
				if n == "" || l.set[n] {
					return fmt.Errorf("segment %q: %s %q: want a name of its own, on one segment", s.Name, l.what, n)
				}
				l.set[n] = true
			}
		}
	}
	return nil
}

// check reports the first out-of-range value of c's parameters.
func (c *Config) check() error {
	switch {
	case c.Round <= 0:
		return fmt.Errorf("round %s: want more than 0", c.Round.D())
	case c.MissedRounds < 1:
		return fmt.Errorf("missed_rounds %d: want 1 or more", c.MissedRounds)
	case c.RemovalGuardRounds < 0:
		return fmt.Errorf("removal_guard_rounds %d: want 0 or more", c.RemovalGuardRounds)
	case !(c.MaxRemovalFraction >= 0): // NaN too
		return fmt.Errorf("max_removal_fraction %g: want 0 or more", c.MaxRemovalFraction)
	case c.RemovalGuardHeld != "" && c.RemovalGuardHeld != HeldReady && c.RemovalGuardHeld != HeldUnobserved:
		return fmt.Errorf("removal_guard_held %q: want ready or unobserved", c.RemovalGuardHeld)
	case c.DeregisterAfter < c.Round:
		return fmt.Errorf("deregister_after %s: want a round (%s) or more", c.DeregisterAfter.D(), c.Round.D())
	case c.WindowRounds < 1:
		return fmt.Errorf("window_rounds %d: want 1 or more", c.WindowRounds)
	case c.SessionTTL < 0 || c.Quiet < 0:
		return fmt.Errorf("session_ttl %s, quiet %s: want 0 or more", c.SessionTTL.D(), c.Quiet.D())
	case c.Slack < c.Round:
		return fmt.Errorf("slack %s: want a round (%s) or more", c.Slack.D(), c.Round.D())
	case len(c.Segments) == 0:
		return errors.New("no segments")
	}
	return nil
}

func (v *validator) bridge(b *BridgeChange) error {
	switch b.State {
	case BridgeUp, BridgeDown:
		if b.Back {
			return fmt.Errorf("%s with back: only paused, cut-segment and cut-registry end with back", b.State)
		}
	case BridgePaused, BridgeCutSegment, BridgeCutRegistry:
	default:
		return fmt.Errorf("state %q: want up, down, paused, cut-segment or cut-registry", b.State)
	}
	return v.known(v.bridges, "bridge", b.Bridge)
}

func (v *validator) fault(f *Fault) error {
	if f.ID == "" || f.Kind == "" {
		return fmt.Errorf("id %q, kind %q: want both", f.ID, f.Kind)
	}
	kind, open := v.faults[f.ID]
	switch {
	case !f.End && open:
		return fmt.Errorf("%q starts again before its end", f.ID)
	case !f.End:
		v.faults[f.ID] = f.Kind
	case !open:
		return fmt.Errorf("end of %q, which has not started", f.ID)
	case kind != f.Kind:
		return fmt.Errorf("end of %q of kind %q: it started as %q", f.ID, f.Kind, kind)
	default:
		delete(v.faults, f.ID)
	}
	return nil
}

func read(r *SinkRead) error {
	if r.Sink == "" {
		return errors.New("no sink")
	}
	if r.Err != "" {
		if len(r.Servers) > 0 || r.Index != 0 || r.Foreign != nil {
			return errors.New("a failed read (err) lists nothing")
		}
		return nil
	}
	for s, h := range r.Servers {
		if s == "" {
			return errors.New("a server with no name")
		}
		if h != Passing && h != Critical {
			return fmt.Errorf("server %q: state %q: want passing or critical", s, h)
		}
	}
	return nil
}
