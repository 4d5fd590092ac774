// Package checker runs the bridge's app checks (pkg/appcheck) against the
// servers the planner holds, and turns their results into each server's
// health (endpoint.Health) with rise/fall hysteresis.
//
// # States
//
// tracker.go is the state machine: a server starts pending; rise passing
// checks in a row make it ready, fall failing ones in a row make it
// failing (from pending or ready); rise passes bring a failing one back.
// A result of the other kind resets the count in a row. A failing check
// never removes a server: discovery decides presence, the check decides
// readiness. A server's endpoint.Check (its state, since when, and the
// output of the check that made the transition) changes only at a
// transition, so a sink that writes it writes once per transition.
//
// # Schedule
//
// One scheduling goroutine keeps the servers in a min-heap by due time
// and hands due checks to Options.Concurrency workers; there is no
// goroutine per server. The rule:
//
//   - a new server's first check is due a random part of
//     Interval × Jitter after it was added (at once with Jitter 0), so
//     that thousands found at once are spread over that time;
//   - each next check is due Interval × (1 + Jitter × (2r − 1)) after the
//     previous one started (r uniform in [0, 1)): Interval moved by up to
//     ±Jitter × Interval, never less than Timeout. The moves have no
//     bias: the mean period is Interval and the spread stays;
//   - a server whose previous check is still in flight is not checked
//     again: the due check is skipped (app_checks_skipped_total) and the
//     next one is due as if it had started;
//   - when every worker is busy, due checks wait for one, in due order,
//     and count as late (app_check_late_seconds);
//   - one wakeup starts every check due within a slack of Interval / 100
//     (at most 50 ms) after it, so that 1,000 checks a second are a few
//     dozen wakeups.
//
// All timing goes through the injected clock (pkg/clock). Workers record
// their results themselves; SetTargets, Decorate, Changed and Explain
// take one short lock and never wait for a check.
//
// # Metrics and logs
//
// The metrics (prefix udp_discovery_bridge_): app_checks_total{result},
// app_check_duration_seconds, app_check_transitions_total{to},
// app_checks_skipped_total{reason}, app_check_late_seconds and
// servers_by_health{state}. Each transition is logged at info with the
// server's address, the states from and to, and the check's output; when
// more than five are published together, the first five are at info,
// then one summary line ("7 servers turned failing: a, b, c, d, e (and 2
// more)"), and the rest at debug. No response body or header is ever
// logged: the output is the checker's own line.
package checker
