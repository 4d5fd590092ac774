package checker

import (
	"strconv"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

// logFirst is how many transitions of one batch are logged at info, each
// on its line; beyond it, one summary line says how many more, and each
// transition is at debug.
const logFirst = 5

// logTransitions logs a batch of transitions (the results one scheduler
// wakeup applied), in address order: each at info up to logFirst, and
// when there are more, the rest at debug and one info line summing up the
// batch: "7 servers turned failing: a, b, c, d, e (and 2 more)", or
// "9 servers changed health: 7 failing: a, ... (and 2 more); 2 ready: f,
// g" when they went both ways. The
// output is the checker's own line (appcheck.Result.Output), never bytes
// a server sent.
func (c *Checks) logTransitions(tns []transition) {
	sortTransitions(tns)
	for i, tn := range tns {
		ev := c.log.Info()
		if len(tns) > logFirst && i >= logFirst {
			ev = c.log.Debug()
		}
		if ev == nil { // level off: no fields built
			continue
		}
		ev.Str("addr", tn.addr.String()).Str("from", tn.from.String()).Str("to", tn.to.String()).
			Str("output", tn.output).Msg("server turned " + tn.to.String())
	}
	if len(tns) <= logFirst {
		return
	}
	ev := c.log.Info()
	if ev == nil {
		return
	}
	var byState [len(healths)][]transition
	for _, tn := range tns {
		byState[tn.to] = append(byState[tn.to], tn)
	}
	var parts []string
	for _, h := range []endpoint.Health{endpoint.Failing, endpoint.Ready, endpoint.Pending} {
		if n := len(byState[h]); n > 0 {
			ev = ev.Int(h.String(), n)
			parts = append(parts, summary(byState[h], h, n == len(tns)))
		}
	}
	msg := strings.Join(parts, "; ")
	if len(parts) > 1 {
		msg = strconv.Itoa(len(tns)) + " servers changed health: " + msg
	}
	ev.Int("servers", len(tns)).Msg(msg)
}

// summary words the transitions to h, all of a batch (whole) or a part:
// "7 servers turned failing: a, b, c, d, e (and 2 more)" or "3 ready: a,
// b, c".
func summary(tns []transition, h endpoint.Health, whole bool) string {
	var b strings.Builder
	if whole {
		b.WriteString(strconv.Itoa(len(tns)) + " servers turned " + h.String() + ": ")
	} else {
		b.WriteString(strconv.Itoa(len(tns)) + " " + h.String() + ": ")
	}
	for i, tn := range tns[:min(len(tns), logFirst)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tn.addr.String())
	}
	if more := len(tns) - logFirst; more > 0 {
		b.WriteString(" (and " + strconv.Itoa(more) + " more)")
	}
	return b.String()
}
