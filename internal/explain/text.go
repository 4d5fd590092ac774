package explain

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Text writes r for a person: per server, its state, how discovery sees
// it, the rule that removes it next, the app check's latest results, what
// each sink did and the fleet's observers; then, when it matters, the
// fleet's removal guard at the address.
func Text(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bridge %s", r.Bridge)
	if r.Segment != "" {
		fmt.Fprintf(&b, " (segment %s)", r.Segment)
	}
	fmt.Fprintf(&b, ", round %d, at %s\n", r.Round, r.At.Format(time.RFC3339))
	if len(r.Servers) == 0 {
		fmt.Fprintf(&b, "%s: not held by this bridge. %s\n", r.Query, r.Note)
	}
	for _, s := range r.Servers {
		ready := "not ready"
		if s.Ready {
			ready = "ready"
		}
		fmt.Fprintf(&b, "\n%s: %s (%s)\n", s.Address, s.State, ready)
		d := s.Discovery
		fmt.Fprintf(&b, "  discovery: replies from %s", d.Source)
		if d.Interface != "" {
			fmt.Fprintf(&b, " on %s", d.Interface)
		}
		if d.Network != "" {
			fmt.Fprintf(&b, " (%s)", d.Network)
		}
		fmt.Fprintf(&b, ", first seen %s, last reply %.1fs ago, %d missed rounds", d.FirstSeen.Format(time.RFC3339), d.LastReplyAge, d.Misses)
		if !d.Established {
			b.WriteString(", not yet established")
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "  removal: %s\n", s.Removal.Rule)
		if c := s.Check; c != nil {
			fmt.Fprintf(&b, "  app check %s: %s", c.Kind, c.State)
			if !c.Since.IsZero() {
				fmt.Fprintf(&b, " since %s", c.Since.Format(time.RFC3339))
			}
			if c.Output != "" {
				fmt.Fprintf(&b, " (%s)", c.Output)
			}
			fmt.Fprintf(&b, "; %d passes and %d failures in a row (rise %d, fall %d)", c.Passes, c.Fails, c.Rise, c.Fall)
			if c.Checking {
				b.WriteString("; a check is in flight")
			}
			b.WriteString("\n")
			for _, h := range c.History {
				verdict := "fail"
				if h.OK {
					verdict = "pass"
				}
				fmt.Fprintf(&b, "    %s  %s  %6.1f ms  %s\n", h.At.Format(time.RFC3339), verdict, h.LatencyMS, h.Reason)
			}
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, k := range s.Sinks {
			fmt.Fprintf(tw, "  sink %s:\t%s\t%s\n", k.Sink, k.State, k.Detail)
		}
		_ = tw.Flush()
		if len(s.Observers) > 0 || s.FleetErr != "" {
			fmt.Fprintf(&b, "  observed by %d bridges of the fleet:\n", len(s.Observers))
			for _, o := range s.Observers {
				fmt.Fprintf(&b, "    %s", o.Bridge)
				if o.Segment != "" {
					fmt.Fprintf(&b, " (segment %s)", o.Segment)
				}
				fmt.Fprintf(&b, ": %s", o.Health)
				if o.Output != "" {
					fmt.Fprintf(&b, " (%s)", o.Output)
				}
				b.WriteString("\n")
			}
			if s.FleetErr != "" {
				fmt.Fprintf(&b, "    the fleet's registry could not be read: %s\n", s.FleetErr)
			}
		}
	}
	if g := r.FleetGuard; g != nil {
		lead := ""
		if g.Leading {
			lead = ", this bridge leads"
		}
		fmt.Fprintf(&b, "\nfleet removal guard (sink %s%s):", g.Sink, lead)
		if g.Note != "" {
			b.WriteString(" " + g.Note)
		}
		b.WriteString("\n")
		for _, h := range g.Holds {
			fmt.Fprintf(&b, "  %s: %s\n", h.Address, h.Detail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
