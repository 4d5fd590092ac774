package sink

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"
)

// TestFileSDWritesTargetGroupsOnlyOnChange: file_format prometheus writes
// the http_sd list (no timestamp), atomically, only when the targets or
// their labels change, and a restart with the same set writes nothing.
func TestFileSDWritesTargetGroupsOnlyOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "udb.json")
	clk := clocktest.New(t0)
	id := promsd.Identity{BridgeID: "node-7"}
	f, err := NewFileSD(path, clk, id, promsd.Ready)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0)
	if res, err := f.Apply(ctx, snap(1)); err != nil || res.Writes != 1 {
		t.Fatalf("empty first apply: %+v, %v (want [] written)", res, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "[]\n" {
		t.Fatalf("empty set = %q, want []", got)
	}
	res, err := f.Apply(ctx, snap(2, a, b))
	if err != nil || res.Writes != 1 || len(res.Diff.Added) != 2 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	want := `[{"targets":["10.0.0.1:8000","10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"node-7","__meta_udb_interface":"eth0"}}]` + "\n"
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Fatalf("file = %s, want %s", got, want)
	}
	st1, _ := os.Stat(path)
	a2 := a
	a2.LastSeen = t0.Add(time.Minute)
	clk.Advance(time.Minute)
	if res, err := f.Apply(ctx, snap(3, a2, b)); err != nil || res.Writes != 0 {
		t.Fatalf("quiet apply wrote: %+v, %v", res, err)
	}
	if st2, _ := os.Stat(path); !os.SameFile(st1, st2) {
		t.Fatal("file replaced on a quiet round")
	}
	// A label change is a change: the same servers on another interface.
	a3, b3 := a, b
	a3.Interface, b3.Interface = "eth1", "eth1"
	if res, err := f.Apply(ctx, snap(4, a3, b3)); err != nil || res.Writes != 1 || !res.Diff.Empty() {
		t.Fatalf("relabel apply: %+v, %v (want one write, no add or remove)", res, err)
	}
	if got, _ := os.ReadFile(path); !strings.Contains(string(got), `"__meta_udb_interface":"eth1"`) {
		t.Fatalf("relabelled file = %s", got)
	}

	// A restart with the same set writes nothing; Plan reads the targets back.
	f2, _ := NewFileSD(path, clocktest.New(t0), id, promsd.Ready)
	if res, err := f2.Apply(ctx, snap(1, a3, b3)); err != nil || res.Writes != 0 {
		t.Fatalf("restart apply: %+v, %v", res, err)
	}
	diff, err := f2.Plan(ctx, snap(1, a3))
	if err != nil || len(diff.Removed) != 1 || diff.Removed[0].Addr != b.Addr || len(diff.Added) != 0 {
		t.Fatalf("Plan = %+v, %v", diff, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A bridge document at the path is not a file_sd list: replaced.
	if err := os.WriteFile(path, []byte(`{"updated_at":"2026-01-01T00:00:00Z","servers":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f3, _ := NewFileSD(path, clk, id, promsd.Ready)
	if res, err := f3.Apply(ctx, snap(1, a3)); err != nil || res.Writes != 1 {
		t.Fatalf("over a bridge document: %+v, %v", res, err)
	}
}

// TestFileFormatKey: file_format picks the format, labels come from the
// bridge's identity (sink.Deps), other values are refused with the key.
func TestFileFormatKey(t *testing.T) {
	reg := NewRegistry(StdoutFactory(), FileFactory())
	schema := reg.Schema()
	path := filepath.Join(t.TempDir(), "sd.json")
	cfg, err := schema.Load(config.Inputs{Flags: map[string]any{"sinks": []string{"file"}, "file_path": path, "file_format": "prometheus"}})
	if err != nil {
		t.Fatal(err)
	}
	sinks, err := reg.Build(cfg, Deps{Registerer: prometheus.NewRegistry(), BridgeID: "b1", Segment: "hall-3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sinks[0].Apply(context.Background(), snap(1, ep("10.0.0.1:8000", t0))); err != nil {
		t.Fatal(err)
	}
	want := `[{"targets":["10.0.0.1:8000"],"labels":{"__meta_udb_bridge_id":"b1","__meta_udb_interface":"eth0","__meta_udb_segment":"hall-3"}}]` + "\n"
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Errorf("file = %s, want %s", got, want)
	}
	if c, err := schema.Load(config.Inputs{}); err != nil || c.SinkSettings("file").(FileSettings).Format != FileFormatBridge {
		t.Errorf("default format: %v", err)
	}
	_, err = schema.Load(config.Inputs{LookupEnv: func(k string) (string, bool) {
		return map[string]string{"DISCOVERY_CLIENT_FILE_FORMAT": "yaml"}[k], k == "DISCOVERY_CLIENT_FILE_FORMAT"
	}})
	if err == nil || !strings.Contains(err.Error(), `file_format (env DISCOVERY_CLIENT_FILE_FORMAT): bad value "yaml"`) {
		t.Errorf("bad format error = %v", err)
	}
}

// FuzzFileSDDecode: whatever is at the path (another tool's file, a torn
// write by hand), reading it back never panics, yields only endpoints with
// an address and a port, and what it yields survives a write and a read.
func FuzzFileSDDecode(f *testing.F) {
	for _, seed := range []string{
		`[]`,
		`[{"targets":["10.0.0.1:8000","10.0.0.2:8000"],"labels":{"__meta_udb_interface":"eth0"}}]`,
		`[{"targets":["10.0.0.1:0","nope","[::1]:80"],"labels":{}}]`,
		`{"updated_at":"2026-01-01T00:00:00Z","servers":[]}`,
		`[{"targets":null,"labels":null}]`, `not json`, ``, `[{"targets":["[::ffff:10.0.0.1]:80"]}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Add([]byte(`[{"targets":["10.0.0.1:8000"],"labels":{"__meta_udb_health":"failing"}},{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_health":"x"}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, sel := range []promsd.Selection{promsd.Ready, promsd.All} {
			fuzzFileSDRoundTrip(t, fileSDFormat{id: promsd.Identity{BridgeID: "b"}, sel: sel}, b)
		}
	})
}

// fuzzFileSDRoundTrip checks one format on one input of FuzzFileSDDecode.
func fuzzFileSDRoundTrip(t *testing.T, format fileSDFormat, b []byte) {
	t.Helper()
	fuzzRoundTrip(t, format, b, func(a netip.AddrPort) bool { return a.IsValid() && a.Port() != 0 })
}

// fuzzRoundTrip is the file formats' fuzz property on one input b: every
// endpoint decoded passes carried (what the format can hold), and the
// format's own document of them decodes to the same set.
func fuzzRoundTrip(t *testing.T, format fileFormat, b []byte, carried func(netip.AddrPort) bool) {
	t.Helper()
	eps, _, ok := format.decode(b)
	if !ok {
		return
	}
	for _, e := range eps {
		if !carried(e.Addr) {
			t.Fatalf("decoded an endpoint the format does not carry: %v", e.Addr)
		}
	}
	s := snapshotOf(eps)
	key, err := format.key(s)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := format.document(s, key, t0)
	again, _, ok := format.decode(doc)
	if !ok {
		t.Fatalf("our own document does not decode: %s", doc)
	}
	if d := endpoint.Between(s.Endpoints, snapshotOf(again).Endpoints); !d.Empty() {
		t.Fatalf("round trip changed the set: %+v\nfrom %q\nwrote %s", d, b, doc)
	}
}
