package connlimit

import (
	"net/netip"
	"time"
)

// An episode is a run of refusals with no gap of Quiet or longer between
// two of them. Its first refusal is logged as a warning with the counts of
// the moment; its end as one summary line. Everything between is counted
// in the metrics only, so a flood costs one log line, not one per
// connection.
type episode struct {
	active      bool
	start, last time.Time
	refused     [len(reasons)]int
}

// refusal is what the warning at an episode's start says.
type refusal struct {
	reason       Reason
	remote       netip.Addr
	host, others int // open connections: the host's, everyone else's
	client       int // open connections of remote (0 for the host)
	lim          Limits
}

// summary is what the line at an episode's end says; ok is false when
// there is nothing to say.
type summary struct {
	ok          bool
	start, last time.Time
	refused     [len(reasons)]int
}

// refuse records a refusal at now. When it starts an episode it returns
// the refusal to warn about, and the summary of the episode before, if
// that one had not been closed yet.
func (e *episode) refuse(now time.Time, quiet time.Duration, r Reason, remote netip.Addr, p pool) (summary, *refusal) {
	var sum summary
	var start *refusal
	if e.active && now.Sub(e.last) >= quiet {
		sum = e.finish()
	}
	if !e.active {
		e.active, e.start = true, now
		start = &refusal{reason: r, remote: remote, host: p.host, others: p.total, client: p.per[remote.WithZone("")], lim: p.lim}
		if r == ReasonHost {
			start.client = 0
		}
	}
	e.last = now
	e.refused[index(r)]++
	return sum, start
}

// settle ends the episode when quiet has passed since its last refusal,
// returning its summary.
func (e *episode) settle(now time.Time, quiet time.Duration) summary {
	if !e.active || now.Sub(e.last) < quiet {
		return summary{}
	}
	return e.finish()
}

// finish ends the episode now, returning its summary.
func (e *episode) finish() summary {
	if !e.active {
		return summary{}
	}
	s := summary{ok: true, start: e.start, last: e.last, refused: e.refused}
	*e = episode{}
	return s
}

func index(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	panic("connlimit: unknown reason " + string(r))
}

// logStart warns that the listener has started refusing connections.
func (l *Listener) logStart(r refusal) {
	ev := l.log.Warn().Str("listener", l.name).Str("reason", string(r.reason)).
		Str("remote", r.remote.String()).
		Int("open_host", r.host).Int("open_others", r.others)
	if r.reason != ReasonHost {
		ev = ev.Int("open_this_client", r.client)
	}
	ev.Int("cap_host", r.lim.Host).Int("cap_per_client", r.lim.PerClient).Int("cap_total", r.lim.Total).
		Dur("quiet", l.quiet).
		Msg("refusing HTTP connections over capacity; further refusals are counted in http_connections_refused_total and summed up once none came for the quiet period")
}

// logSummary logs the end of an episode, if s has one.
func (l *Listener) logSummary(s summary) {
	if !s.ok {
		return
	}
	ev := l.log.Info().Str("listener", l.name)
	total := 0
	for i, r := range reasons {
		ev = ev.Int("refused_"+string(r), s.refused[i])
		total += s.refused[i]
	}
	ev.Int("refused", total).Dur("lasted", s.last.Sub(s.start)).Msg("HTTP connection refusals stopped")
}
