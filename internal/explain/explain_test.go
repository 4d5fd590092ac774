package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

type nopSink struct{ name string }

func (s nopSink) Name() string { return s.name }
func (s nopSink) Apply(context.Context, endpoint.Snapshot) (sink.Result, error) {
	return sink.Result{}, nil
}
func (s nopSink) Close(context.Context) error { return nil }

// skipper skips loopback servers, as the Kubernetes sink does.
type skipper struct{ nopSink }

func (skipper) Explain(_ context.Context, a netip.AddrPort, applied bool) sink.Explanation {
	if a.Addr().IsLoopback() {
		return sink.Explanation{Sink: "kubernetes", State: sink.ExplainSkipped, Detail: "a loopback address cannot be an endpoint"}
	}
	return sink.Explanation{Sink: "kubernetes", State: sink.ExplainWritten, Detail: "ready: true"}
}

type checks map[netip.AddrPort]Check

func (c checks) ExplainCheck(a netip.AddrPort) (Check, bool) { x, ok := c[a]; return x, ok }

type fleet struct {
	obs []Observer
	err error
	// guard is what FleetGuard answers; its Holds are those at the
	// address asked about.
	guard FleetGuard
}

func (f fleet) Observers(context.Context, netip.AddrPort) ([]Observer, error) { return f.obs, f.err }

func (f fleet) FleetGuard(ip netip.Addr, port uint16) FleetGuard {
	g := f.guard
	g.Holds = nil
	for _, h := range f.guard.Holds {
		a := netip.MustParseAddrPort(h.Address)
		if a.Addr() == ip && (port == 0 || a.Port() == port) {
			g.Holds = append(g.Holds, h)
		}
	}
	if len(g.Holds) > 0 {
		g.Note = ""
	}
	return g
}

func seen(at time.Time, addrs ...string) []plan.Seen {
	var out []plan.Seen
	for _, s := range addrs {
		a := netip.MustParseAddrPort(s)
		out = append(out, plan.Seen{Addr: a, Source: netip.AddrPortFrom(a.Addr(), 9999), Interface: "eth0",
			Network: netip.MustParsePrefix("10.1.0.0/24"), At: at})
	}
	return out
}

func newBoard(t *testing.T) (*Board, *clocktest.Clock) {
	t.Helper()
	return newFleetBoard(t, fleet{obs: []Observer{{Bridge: "node-a", Segment: "lab", Health: "failing"}, {Bridge: "node-b", Segment: "lab", Health: "failing"}}})
}

// newFleetBoard is a board of a bridge in fleet f: it observes 10.1.0.6
// (its app check fails) and 127.0.0.1, and missed 10.1.0.5 in its last
// round.
func newFleetBoard(t *testing.T, f fleet) (*Board, *clocktest.Clock) {
	t.Helper()
	clk := clocktest.New(time.Unix(1_800_000_000, 0))
	pc := plan.Config{MissedRounds: 3, MaxRemovalFraction: 0.5, GuardRounds: 10}
	failing := netip.MustParseAddrPort("10.1.0.6:8000")
	b := New(Config{Bridge: "node-a", Segment: "lab", Plan: pc, Interval: 10 * time.Second, Clock: clk,
		Checks: checks{failing: {Kind: "http", State: "failing", Output: "HTTP GET /healthz: 503 in 4 ms", Fails: 3, Fall: 3, Rise: 2,
			History: []Result{{At: clk.Now(), Status: 503, LatencyMS: 4, Reason: "503 Service Unavailable"}}}},
		Fleet: f,
	})
	var st plan.State
	at := clk.Now()
	st, _ = plan.Next(pc, st, plan.Observation{Round: 1, At: at, Seen: seen(at, "10.1.0.5:8000", "10.1.0.6:8000", "127.0.0.1:8000")})
	st, _ = plan.Next(pc, st, plan.Observation{Round: 2, At: at, Seen: seen(at, "10.1.0.5:8000", "10.1.0.6:8000", "127.0.0.1:8000")})
	st, _ = plan.Next(pc, st, plan.Observation{Round: 3, At: at, Seen: seen(at, "10.1.0.6:8000", "127.0.0.1:8000")})
	b.Planned(3, st)
	b.AddSink("stdout", nopSink{"stdout"})
	b.AddSink("kubernetes", skipper{nopSink{"kubernetes"}})
	snap := st.Snapshot(3, at)
	b.Applied("stdout", snap, nil)
	b.Applied("kubernetes", snap, nil)
	clk.Advance(2 * time.Second)
	return b, clk
}

func TestReport(t *testing.T) {
	b, _ := newBoard(t)
	ctx := context.Background()
	tests := []struct {
		query, state string
		ready        bool
		sinkState    string
		want         []string // in the JSON
	}{
		{"10.1.0.6", "failing", false, sink.ExplainWritten, []string{`"fails": 3`, "HTTP GET /healthz: 503 in 4 ms", `"bridge": "node-b"`}},
		{"10.1.0.5:8000", "unobserved", false, sink.ExplainWritten, []string{`"misses": 1`, `"rounds_left": 2`}},
		{"127.0.0.1", "pending", false, sink.ExplainSkipped, []string{"a loopback address cannot be an endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r, err := b.Report(ctx, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Servers) != 1 {
				t.Fatalf("servers = %d, want 1: %+v", len(r.Servers), r)
			}
			s := r.Servers[0]
			if s.State != tt.state || s.Ready != tt.ready {
				t.Errorf("state %s ready %v, want %s %v", s.State, s.Ready, tt.state, tt.ready)
			}
			if len(s.Sinks) != 2 || s.Sinks[1].State != tt.sinkState {
				t.Errorf("sinks %+v, want kubernetes %s", s.Sinks, tt.sinkState)
			}
			j, _ := json.MarshalIndent(r, "", "  ")
			for _, w := range tt.want {
				if !bytes.Contains(j, []byte(w)) {
					t.Errorf("JSON lacks %s:\n%s", w, j)
				}
			}
		})
	}
	r, err := b.Report(ctx, "10.9.9.9")
	if err != nil || len(r.Servers) != 0 || !strings.Contains(r.Note, "holds no server") {
		t.Errorf("unknown server: %+v %v", r, err)
	}
	if _, err := b.Report(ctx, "not-an-ip"); err == nil || !strings.Contains(err.Error(), `"not-an-ip"`) {
		t.Errorf("bad query error: %v", err)
	}
}

// TestReportFleetGuard: the report says what the bridge knows of the
// fleet's removal guard where it matters: a server the guard holds (the
// leader knows), an address this bridge holds nothing at, or a server it
// no longer observes; not for a server it observes.
func TestReportFleetGuard(t *testing.T) {
	since := time.Unix(1_800_000_000, 0).UTC()
	held := FleetHold{Address: "10.9.9.9:8000", Since: since, Until: since.Add(5 * time.Minute), Unobserved: 4, Established: 6, Held: 4,
		RemovalGuardHeld: "ready", Detail: "the fleet's removal guard holds its removal since ..."}
	leader := FleetGuard{Sink: "consul", Leading: true, Holds: []FleetHold{held}, Note: "this bridge leads the fleet: its removal guard holds no server here"}
	follower := FleetGuard{Sink: "consul", Note: "this bridge does not lead the fleet: only the leader knows"}
	tests := []struct {
		name, query string
		guard       FleetGuard
		want        *FleetGuard
		text        []string // in Text, when want is set
	}{
		{"leader, held, this bridge holds nothing there", "10.9.9.9", leader,
			&FleetGuard{Sink: "consul", Leading: true, Holds: []FleetHold{held}},
			[]string{"10.9.9.9: not held by this bridge.", "fleet removal guard (sink consul, this bridge leads):\n  10.9.9.9:8000: the fleet's removal guard holds its removal since ..."}},
		{"leader, held, asked with its port", "10.9.9.9:8000", leader,
			&FleetGuard{Sink: "consul", Leading: true, Holds: []FleetHold{held}}, nil},
		{"leader, nothing held at an address this bridge does not hold", "10.9.9.8", leader,
			&FleetGuard{Sink: "consul", Leading: true, Note: leader.Note}, []string{"(sink consul, this bridge leads): this bridge leads the fleet: its removal guard holds no server here"}},
		{"not leading, an address this bridge does not hold", "10.9.9.9", follower, &follower,
			[]string{"fleet removal guard (sink consul): this bridge does not lead the fleet: only the leader knows"}},
		{"not leading, a server this bridge missed", "10.1.0.5", follower, &follower, []string{"10.1.0.5:8000: unobserved"}},
		{"not leading, a server this bridge observes", "10.1.0.6", follower, nil, nil},
		{"leader, a server this bridge observes", "10.1.0.6:8000", leader, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newFleetBoard(t, fleet{guard: tt.guard})
			r, err := b.Report(context.Background(), tt.query)
			if err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(r)
			if tt.want == nil {
				if r.FleetGuard != nil || bytes.Contains(j, []byte("fleet_guard")) {
					t.Errorf("fleet guard %+v in the report, want none:\n%s", r.FleetGuard, j)
				}
				return
			}
			if r.FleetGuard == nil {
				t.Fatalf("no fleet guard in the report, want %+v", *tt.want)
			}
			if got, _ := json.Marshal(r.FleetGuard); !bytes.Contains(j, append([]byte(`"fleet_guard":`), got...)) {
				t.Errorf("JSON lacks the fleet guard:\n%s", j)
			}
			if g := *r.FleetGuard; g.Sink != tt.want.Sink || g.Leading != tt.want.Leading || len(g.Holds) != len(tt.want.Holds) ||
				(len(g.Holds) == 0 && g.Note != tt.want.Note) {
				t.Errorf("fleet guard %+v, want %+v", g, *tt.want)
			}
			var text bytes.Buffer
			if err := Text(&text, r); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.text {
				if !strings.Contains(text.String(), w) {
					t.Errorf("text lacks %q:\n%s", w, text.String())
				}
			}
		})
	}
}

func TestReportGuardAndPendingSink(t *testing.T) {
	clk := clocktest.New(time.Unix(1_800_000_000, 0))
	pc := plan.Config{MissedRounds: 1, MaxRemovalFraction: 0.5, GuardRounds: 5}
	b := New(Config{Bridge: "x", Plan: pc, Clock: clk})
	var st plan.State
	at := clk.Now()
	all := seen(at, "10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80")
	st, _ = plan.Next(pc, st, plan.Observation{Round: 1, At: at, Seen: all})
	st, _ = plan.Next(pc, st, plan.Observation{Round: 2, At: at})
	b.Planned(2, st)
	b.AddSink("consul", nopSink{"consul"})
	b.Applied("consul", endpoint.Snapshot{}, errors.New("ACL not found"))
	r, err := b.Report(context.Background(), "10.1.0.2")
	if err != nil || len(r.Servers) != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	s := r.Servers[0]
	if !s.Removal.HeldByGuard || s.Removal.GuardSince != 2 || !strings.Contains(s.Removal.Rule, "held by the removal guard") {
		t.Errorf("removal %+v", s.Removal)
	}
	if s.Sinks[0].State != sink.ExplainPending || !strings.Contains(s.Sinks[0].Detail, "ACL not found") {
		t.Errorf("sink %+v", s.Sinks[0])
	}
}

func TestHandlerAndFetch(t *testing.T) {
	b, _ := newBoard(t)
	token := func() (string, error) { return "s3cret", nil }
	srv := httptest.NewServer(b.Handler(token))
	defer srv.Close()
	ctx := context.Background()
	if _, _, err := Fetch(ctx, srv.Client(), srv.URL, "10.1.0.6", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
	rep, body, err := Fetch(ctx, srv.Client(), srv.URL, "10.1.0.6", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Servers) != 1 || rep.Servers[0].State != "failing" || !json.Valid(body) {
		t.Fatalf("report %+v", rep)
	}
	if _, _, err := Fetch(ctx, srv.Client(), srv.URL, "bad", "s3cret"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad query: %v", err)
	}
	mux := http.NewServeMux()
	other := httptest.NewServer(mux)
	defer other.Close()
	if _, _, err := Fetch(ctx, other.Client(), other.URL, "10.1.0.6", ""); err == nil || !strings.Contains(err.Error(), "debug_endpoint") {
		t.Fatalf("no endpoint: %v", err)
	}
	if _, _, err := Fetch(ctx, other.Client(), "ftp://x", "10.1.0.6", ""); err == nil {
		t.Fatal("bad URL accepted")
	}
	var text bytes.Buffer
	if err := Text(&text, rep); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"10.1.0.6:8000: failing (not ready)", "app check http: failing", "503 Service Unavailable", "sink kubernetes:", "observed by 2 bridges", "node-b"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, text.String())
		}
	}
}
