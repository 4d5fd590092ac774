package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// health returns e as an app check judged it: state h since since, with
// the output of the check that made the transition.
func health(e endpoint.Endpoint, h endpoint.Health, output string, since time.Time) endpoint.Endpoint {
	e.Check = endpoint.Check{State: h, Output: output, Since: since}
	return e
}

// TestStdoutHealth: with an app check every line carries the health, the
// check's output and since when, and each transition of a held server is
// a line whose event is the new state; without one the lines are exactly
// what they were before app checks existed.
func TestStdoutHealth(t *testing.T) {
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0)
	t1, t2 := t0.Add(20*time.Second), t0.Add(50*time.Second)
	const (
		noCheckA = `{"event":"added","ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","first_seen":"2026-11-24T12:00:00Z","last_seen":"2026-11-24T12:00:00Z"}`
		prefixA  = `"ip":"10.0.0.1","port":8000,"source_address":"10.0.0.1:9999","interface":"eth0","first_seen":"2026-11-24T12:00:00Z","last_seen":"2026-11-24T12:00:00Z"`
		prefixB  = `"ip":"10.0.0.2","port":8000,"source_address":"10.0.0.2:9999","interface":"eth0","first_seen":"2026-11-24T12:00:00Z","last_seen":"2026-11-24T12:00:00Z"`
	)
	for _, tc := range []struct {
		name  string
		snaps []endpoint.Snapshot
		want  [][]string // the lines of each Apply
	}{
		{"no app check", []endpoint.Snapshot{snap(1, a), snap(2, a)},
			[][]string{{noCheckA}, nil}},
		{"pending, ready, failing, removed",
			[]endpoint.Snapshot{
				snap(1, health(a, endpoint.Pending, "", t0), health(b, endpoint.Pending, "", t0)),
				snap(1, health(a, endpoint.Ready, "HTTP GET /healthz: 200 in 3 ms", t1), health(b, endpoint.Pending, "", t0)),
				snap(2, health(a, endpoint.Ready, "HTTP GET /healthz: 200 in 3 ms", t1), health(b, endpoint.Pending, "", t0)),
				snap(2, health(a, endpoint.Failing, "HTTP GET /healthz: 503 in 4 ms", t2), health(b, endpoint.Ready, "HTTP GET /healthz: 200 in 2 ms", t2)),
				snap(3, health(b, endpoint.Ready, "HTTP GET /healthz: 200 in 2 ms", t2)),
			},
			[][]string{
				{`{"event":"added",` + prefixA + `,"health":"pending","health_since":"2026-11-24T12:00:00Z"}`,
					`{"event":"added",` + prefixB + `,"health":"pending","health_since":"2026-11-24T12:00:00Z"}`},
				{`{"event":"ready",` + prefixA + `,"health":"ready","check":"HTTP GET /healthz: 200 in 3 ms","health_since":"2026-11-24T12:00:20Z"}`},
				nil, // the same health again: nothing to say
				{`{"event":"failing",` + prefixA + `,"health":"failing","check":"HTTP GET /healthz: 503 in 4 ms","health_since":"2026-11-24T12:00:50Z"}`,
					`{"event":"ready",` + prefixB + `,"health":"ready","check":"HTTP GET /healthz: 200 in 2 ms","health_since":"2026-11-24T12:00:50Z"}`},
				{`{"event":"removed",` + prefixA + `,"health":"failing","check":"HTTP GET /healthz: 503 in 4 ms","health_since":"2026-11-24T12:00:50Z"}`},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := NewStdout(&buf)
			for i, sn := range tc.snaps {
				buf.Reset()
				res, err := s.Apply(context.Background(), sn)
				if err != nil {
					t.Fatal(err)
				}
				got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
				if buf.Len() == 0 {
					got = nil
				}
				if strings.Join(got, "\n") != strings.Join(tc.want[i], "\n") {
					t.Errorf("apply %d:\n got %s\nwant %s", i+1, strings.Join(got, "\n     "), strings.Join(tc.want[i], "\n     "))
				}
				if res.Writes != len(tc.want[i]) {
					t.Errorf("apply %d: %d writes, want %d", i+1, res.Writes, len(tc.want[i]))
				}
			}
		})
	}
}

// TestFileHealth: the bridge's document carries each server's health; it
// is rewritten on a transition, not on a re-post of the same health, and a
// restart reading it back writes nothing.
func TestFileHealth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	clk := clocktest.New(t0)
	f, err := NewFile(path, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0)
	t1 := t0.Add(20 * time.Second)
	pending := snap(1, health(a, endpoint.Pending, "", t0), health(b, endpoint.Pending, "", t0))
	ready := snap(1, health(a, endpoint.Ready, "TCP connect: ok in 1 ms", t1), health(b, endpoint.Pending, "", t0))
	steps := []struct {
		name   string
		snap   endpoint.Snapshot
		writes int
		diff   string // added/removed/changed counts
	}{
		{"first round", pending, 1, "2/0/0"},
		{"same health again", pending, 0, "0/0/0"},
		{"a turns ready", ready, 1, "0/0/1"},
		{"the round's end with the same health", snap(2, ready.Endpoints...), 0, "0/0/0"},
	}
	for _, st := range steps {
		clk.Advance(time.Second)
		res, err := f.Apply(ctx, st.snap)
		if err != nil {
			t.Fatal(err)
		}
		if res.Writes != st.writes || counts(res.Diff) != st.diff {
			t.Errorf("%s: %d writes, diff %+v; want %d writes, diff %s", st.name, res.Writes, res.Diff, st.writes, st.diff)
		}
	}
	doc := readDoc(t, path)
	if len(doc.Servers) != 2 {
		t.Fatalf("document = %+v", doc)
	}
	if r := doc.Servers[0]; r.Health != "ready" || r.Check != "TCP connect: ok in 1 ms" || r.HealthSince == nil || !r.HealthSince.Equal(t1) {
		t.Errorf("10.0.0.1 = %+v, want ready since %v with the check's output", r, t1)
	}
	if r := doc.Servers[1]; r.Health != "pending" || r.Check != "" || r.HealthSince == nil || !r.HealthSince.Equal(t0) {
		t.Errorf("10.0.0.2 = %+v, want pending since %v", r, t0)
	}
	f2, _ := NewFile(path, clk)
	if res, err := f2.Apply(ctx, ready); err != nil || res.Writes != 0 {
		t.Fatalf("restart with the same health: %+v, %v (want no write)", res, err)
	}
	if diff, err := f2.Plan(ctx, pending); err != nil || len(diff.Changed) != 1 || diff.Changed[0].Addr != a.Addr {
		t.Errorf("Plan back to pending = %+v, %v; want 10.0.0.1 changed", diff, err)
	}

	// Without an app check the document has no health fields.
	plain := filepath.Join(t.TempDir(), "plain.json")
	f3, _ := NewFile(plain, clk)
	if _, err := f3.Apply(ctx, snap(1, a)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(plain); bytes.Contains(b, []byte("health")) || bytes.Contains(b, []byte(`"check"`)) {
		t.Errorf("document without an app check holds health fields:\n%s", b)
	}
}

// counts spells a diff as "added/removed/changed".
func counts(d endpoint.Diff) string {
	return fmt.Sprintf("%d/%d/%d", len(d.Added), len(d.Removed), len(d.Changed))
}

// TestFileSDHealth: file_format prometheus lists the ready servers only,
// or with sd_targets all every server labelled with its health; it is
// rewritten only when what it lists changes.
func TestFileSDHealth(t *testing.T) {
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0)
	t1 := t0.Add(20 * time.Second)
	round := snap(1, health(a, endpoint.Ready, "TCP connect: ok in 1 ms", t0), health(b, endpoint.Pending, "", t0))
	bReady := snap(1, health(a, endpoint.Ready, "TCP connect: ok in 1 ms", t0), health(b, endpoint.Ready, "TCP connect: ok in 1 ms", t1))
	aFails := snap(2, health(a, endpoint.Failing, "TCP connect: connection refused", t1), health(b, endpoint.Ready, "TCP connect: ok in 1 ms", t1))
	const labels = `"__meta_udb_bridge_id":"n","__meta_udb_interface":"eth0"`
	for _, tc := range []struct {
		sel    promsd.Selection
		snaps  []endpoint.Snapshot
		files  []string // "" when the apply writes nothing
		change []string // added/removed/changed of each apply
	}{
		{promsd.Ready, []endpoint.Snapshot{round, round, bReady, aFails},
			[]string{
				`[{"targets":["10.0.0.1:8000"],"labels":{` + labels + `}}]`,
				"",
				`[{"targets":["10.0.0.1:8000","10.0.0.2:8000"],"labels":{` + labels + `}}]`,
				`[{"targets":["10.0.0.2:8000"],"labels":{` + labels + `}}]`,
			},
			[]string{"1/0/0", "0/0/0", "1/0/0", "0/1/0"}},
		{promsd.All, []endpoint.Snapshot{round, round, bReady, aFails},
			[]string{
				`[{"targets":["10.0.0.2:8000"],"labels":{` + labels + `,"__meta_udb_health":"pending"}},{"targets":["10.0.0.1:8000"],"labels":{` + labels + `,"__meta_udb_health":"ready"}}]`,
				"",
				`[{"targets":["10.0.0.1:8000","10.0.0.2:8000"],"labels":{` + labels + `,"__meta_udb_health":"ready"}}]`,
				`[{"targets":["10.0.0.1:8000"],"labels":{` + labels + `,"__meta_udb_health":"failing"}},{"targets":["10.0.0.2:8000"],"labels":{` + labels + `,"__meta_udb_health":"ready"}}]`,
			},
			[]string{"2/0/0", "0/0/0", "0/0/1", "0/0/1"}},
	} {
		t.Run(string(tc.sel), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sd.json")
			f, err := NewFileSD(path, clocktest.New(t0), promsd.Identity{BridgeID: "n"}, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			for i, sn := range tc.snaps {
				res, err := f.Apply(context.Background(), sn)
				if err != nil {
					t.Fatal(err)
				}
				if got := counts(res.Diff); got != tc.change[i] {
					t.Errorf("apply %d: diff %s, want %s", i+1, got, tc.change[i])
				}
				if tc.files[i] == "" {
					if res.Writes != 0 {
						t.Errorf("apply %d wrote", i+1)
					}
					continue
				}
				got, _ := os.ReadFile(path)
				if res.Writes != 1 || sortedLabels(string(got)) != sortedLabels(tc.files[i]+"\n") {
					t.Errorf("apply %d: %d writes, file\n %s\nwant\n %s", i+1, res.Writes, got, tc.files[i])
				}
			}
			// A restart with the file on disk writes nothing.
			f2, _ := NewFileSD(path, clocktest.New(t0), promsd.Identity{BridgeID: "n"}, tc.sel)
			if res, err := f2.Apply(context.Background(), tc.snaps[len(tc.snaps)-1]); err != nil || res.Writes != 0 {
				t.Errorf("restart: %+v, %v (want no write)", res, err)
			}
		})
	}
}

// sortedLabels spells a file_sd list as encoding/json writes it: label
// names sorted, so the test's lists can be written in reading order.
func sortedLabels(s string) string {
	var groups []promsd.Group
	if err := json.Unmarshal([]byte(s), &groups); err != nil {
		return "not JSON: " + s
	}
	b, _ := promsd.Marshal(groups)
	return string(b)
}
