package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/clock/clocktest"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func ep(s string, seen time.Time) endpoint.Endpoint {
	ap := netip.MustParseAddrPort(s)
	return endpoint.Endpoint{Addr: ap, Source: netip.AddrPortFrom(ap.Addr(), 9999), Interface: "eth0", FirstSeen: seen, LastSeen: seen}
}

func snap(round uint64, eps ...endpoint.Endpoint) endpoint.Snapshot {
	return endpoint.Snapshot{Round: round, At: t0, Endpoints: endpoint.Sorted(eps)}
}

func TestStdoutPrintsChangesOnly(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdout(&buf)
	ctx := context.Background()
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8001", t0)
	steps := []struct {
		snap endpoint.Snapshot
		want []string // event ip:port
	}{
		{snap(1, a, b), []string{"added 10.0.0.1:8000", "added 10.0.0.2:8001"}},
		{snap(2, a, b), nil},
		{snap(3, b), []string{"removed 10.0.0.1:8000"}},
		{snap(4, a), []string{"added 10.0.0.1:8000", "removed 10.0.0.2:8001"}},
	}
	for i, st := range steps {
		buf.Reset()
		res, err := s.Apply(ctx, st.snap)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var r Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("step %d: line %q is not JSON: %v", i, line, err)
			}
			if r.LastSeen == nil || r.SourceAddress == "" || r.Interface != "eth0" || r.FirstSeen.IsZero() {
				t.Errorf("step %d: incomplete record %q", i, line)
			}
			got = append(got, r.Event+" "+netip.AddrPortFrom(netip.MustParseAddr(r.IP), r.Port).String())
		}
		if strings.Join(got, ",") != strings.Join(st.want, ",") {
			t.Errorf("step %d: got %v, want %v", i, got, st.want)
		}
		if res.Writes != len(st.want) {
			t.Errorf("step %d: writes %d, want %d", i, res.Writes, len(st.want))
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestStdoutWriteErrorKeepsChangesForNextTime(t *testing.T) {
	s := NewStdout(failWriter{})
	if _, err := s.Apply(context.Background(), snap(1, ep("10.0.0.1:8000", t0))); err == nil {
		t.Fatal("want an error")
	}
	var buf bytes.Buffer
	s.w = &buf
	if _, err := s.Apply(context.Background(), snap(2, ep("10.0.0.1:8000", t0))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"added"`) {
		t.Fatalf("the add was lost after a failed write: %q", buf.String())
	}
}

func readDoc(t *testing.T, path string) FileDocument {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d FileDocument
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("invalid JSON in %s: %v", path, err)
	}
	return d
}

func TestFileWritesOnlyOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	clk := clocktest.New(t0)
	f, err := NewFile(path, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0)
	res, err := f.Apply(ctx, snap(1, a, b))
	if err != nil || res.Writes != 1 || len(res.Diff.Added) != 2 {
		t.Fatalf("first apply: %+v, %v", res, err)
	}
	st1, _ := os.Stat(path)
	// last_seen moves every round but is not part of the document.
	a2 := a
	a2.LastSeen = t0.Add(time.Minute)
	clk.Advance(time.Minute)
	now := clk.Now()
	res, err = f.Apply(ctx, snap(2, a2, b))
	if err != nil || res.Writes != 0 {
		t.Fatalf("quiet apply wrote: %+v, %v", res, err)
	}
	st2, _ := os.Stat(path)
	if !st1.ModTime().Equal(st2.ModTime()) || !os.SameFile(st1, st2) {
		t.Fatal("file replaced on a quiet round")
	}
	res, err = f.Apply(ctx, snap(3, b))
	if err != nil || res.Writes != 1 || len(res.Diff.Removed) != 1 {
		t.Fatalf("remove apply: %+v, %v", res, err)
	}
	d := readDoc(t, path)
	if len(d.Servers) != 1 || d.Servers[0].IP != "10.0.0.2" || !d.UpdatedAt.Equal(now) {
		t.Fatalf("document = %+v", d)
	}

	// A new sink (restart) with the same set writes nothing.
	f2, _ := NewFile(path, clocktest.New(now))
	if res, err := f2.Apply(ctx, snap(1, b)); err != nil || res.Writes != 0 {
		t.Fatalf("restart apply: %+v, %v", res, err)
	}
	diff, err := f2.Plan(ctx, snap(1, a, b))
	if err != nil || len(diff.Added) != 1 || len(diff.Removed) != 0 {
		t.Fatalf("Plan = %+v, %v", diff, err)
	}
}

func TestFileKeepsModeAndReplacesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := NewFile(path, clocktest.New(t0))
	if _, err := f.Apply(context.Background(), snap(1, ep("10.0.0.1:8000", t0))); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", st.Mode().Perm())
	}
	if len(readDoc(t, path).Servers) != 1 {
		t.Error("garbage not replaced")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestFileErrors(t *testing.T) {
	if _, err := NewFile("", nil); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := NewFile("/nonexistent-dir-udb/x.json", nil); err == nil || !strings.Contains(err.Error(), "/nonexistent-dir-udb/x.json") {
		t.Errorf("missing directory error = %v", err)
	}
}

func TestFileStartupErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "to-dir.json")
	if err := os.Symlink("sub", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{sub, "is a directory"},
		{link, "is a directory"},
	} {
		if _, err := NewFile(tc.path, nil); err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewFile(%s) = %v; want an error naming it and %q", tc.path, err, tc.want)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ro, "x.json")
		if _, err := NewFile(p, nil); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("unwritable directory: %v", err)
		}
	}
}

// TestFileFollowsSymlink: with link.json -> real/target.json (relative),
// every write replaces target.json in real/ and the link stays a link, also
// when the target did not exist yet and after the link is retargeted.
func TestFileFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(real, "target.json")
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(filepath.Join("real", "target.json"), link); err != nil { // dangling at first
		t.Fatal(err)
	}
	f, err := NewFile(link, clocktest.New(t0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(step string, want int) {
		t.Helper()
		st, err := os.Lstat(link)
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s: %s is no longer a link (%v, %v)", step, link, st.Mode(), err)
		}
		b, err := os.ReadFile(target)
		if err != nil {
			t.Fatalf("%s: target: %v", step, err)
		}
		var doc FileDocument
		if err := json.Unmarshal(b, &doc); err != nil || len(doc.Servers) != want {
			t.Fatalf("%s: target holds %d servers (%v), want %d", step, len(doc.Servers), err, want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Errorf("%s: %s holds %d entries, want the link and real/ only", step, dir, len(ents))
		}
	}
	if _, err := f.Apply(ctx, snap(1, ep("10.0.0.1:8000", t0))); err != nil {
		t.Fatal(err)
	}
	check("created through a dangling link", 1)
	if _, err := f.Apply(ctx, snap(2, ep("10.0.0.1:8000", t0), ep("10.0.0.2:8000", t0))); err != nil {
		t.Fatal(err)
	}
	check("replaced", 2)

	other := filepath.Join(real, "other.json")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(ctx, snap(3, ep("10.0.0.3:8000", t0))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(other); err != nil || !strings.Contains(string(b), "10.0.0.3") {
		t.Errorf("after retargeting the link, other.json = %q, %v", b, err)
	}
}

// TestFileReaderNeverSeesPartialDocument polls the file while it changes.
func TestFileReaderNeverSeesPartialDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "servers.json")
	f, _ := NewFile(path, nil)
	ctx := context.Background()
	if _, err := f.Apply(ctx, snap(0)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(path)
			if err != nil {
				bad.Add(1)
				continue
			}
			var d FileDocument
			if json.Unmarshal(b, &d) != nil {
				bad.Add(1)
			}
			reads.Add(1)
		}
	}()
	for round := range uint64(200) {
		var eps []endpoint.Endpoint
		for i := range int(round%50) * 20 {
			eps = append(eps, ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 8000).String(), t0))
		}
		if _, err := f.Apply(ctx, snap(round, eps...)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads saw a missing or invalid document", bad.Load(), reads.Load())
	}
}
