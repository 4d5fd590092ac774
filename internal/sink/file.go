package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// FileDocument is the JSON document the file sink keeps at its path.
type FileDocument struct {
	// UpdatedAt is when the set last changed (not when it was last
	// confirmed: the file is rewritten only on change).
	UpdatedAt time.Time `json:"updated_at"`
	// Servers is sorted by address then port.
	Servers []Record `json:"servers"`
}

// File keeps the whole current set as one JSON document at a path. It writes
// only when the set changed, and atomically: a temporary file in the same
// directory, fsync, rename over the target, fsync of the directory. A path
// that is a symbolic link is followed to its final target, which is what
// gets replaced (in its own directory); the link is left in place. A reader
// sees the old document or the new one, never half of one. An existing
// file's mode and owner are kept; a new file gets mode 0644.
type File struct {
	path   string
	clock  clock.Clock
	format fileFormat
	// last is the servers part of the document on disk, nil when unknown;
	// prev the endpoints it holds.
	last []byte
	prev endpoint.Snapshot
}

// NewFile returns a file sink for path, stamping documents with clk (nil:
// the real clock). A symbolic link is followed to its final target (which
// need not exist yet): the target is replaced and the link kept. The target
// must not be a directory, and its directory must exist and take a new
// file: NewFile creates and removes one there, so that a read-only or
// unwritable directory fails at start-up rather than at the first change.
func NewFile(path string, clk clock.Clock) (*File, error) {
	if path == "" {
		return nil, errors.New("file sink: file_path is empty")
	}
	target, err := resolveLink(path)
	if err != nil {
		return nil, fmt.Errorf("file sink: file_path %q: %w", path, err)
	}
	via := ""
	if target != path {
		via = fmt.Sprintf(" (its link target %s)", target)
	}
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		return nil, fmt.Errorf("file sink: file_path %q%s is a directory", path, via)
	}
	dir := filepath.Dir(target)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("file sink: directory of file_path %q%s: %w", path, via, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("file sink: file_path %q%s: %s is not a directory", path, via, dir)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(target)+".probe-*")
	if err != nil {
		return nil, fmt.Errorf("file sink: file_path %q%s: directory %s does not take a new file: %w", path, via, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return &File{path: path, clock: clock.OrReal(clk), format: bridgeFormat{}}, nil
}

// NewFileSD is NewFile writing Prometheus file_sd target groups
// (internal/promsd, the list /sd/prometheus serves) of the servers sel
// names (sd_targets: the ready ones, or all with their health), labelled
// with id, instead of the bridge's own document. The file holds no
// timestamp: it changes only when the set of targets or their labels do.
func NewFileSD(path string, clk clock.Clock, id promsd.Identity, sel promsd.Selection) (*File, error) {
	f, err := NewFile(path, clk)
	if err != nil {
		return nil, err
	}
	f.format = fileSDFormat{id: id, sel: sel}
	return f, nil
}

// fileFormat is how the file sink spells a set on disk.
type fileFormat interface {
	// key returns what tells whether the set changed: the part of the
	// document that describes the servers.
	key(snap endpoint.Snapshot) ([]byte, error)
	// document returns the file content for snap, whose key is key.
	document(snap endpoint.Snapshot, key []byte, now time.Time) ([]byte, error)
	// decode returns the endpoints of a file's content and its key; ok is
	// false when b is not a document of this format.
	decode(b []byte) (eps []endpoint.Endpoint, key []byte, ok bool)
	// listed returns the part of snap the file lists (what its diffs are
	// computed on).
	listed(snap endpoint.Snapshot) endpoint.Snapshot
}

// bridgeFormat is the bridge's own document (FileDocument).
type bridgeFormat struct{}

func (bridgeFormat) key(snap endpoint.Snapshot) ([]byte, error) {
	b, _, err := serversJSON(snap)
	return b, err
}

func (bridgeFormat) document(snap endpoint.Snapshot, _ []byte, now time.Time) ([]byte, error) {
	_, recs, err := serversJSON(snap)
	if err != nil {
		return nil, err
	}
	doc, err := json.MarshalIndent(FileDocument{UpdatedAt: now.UTC(), Servers: recs}, "", "  ")
	return append(doc, '\n'), err
}

// listed implements fileFormat: the document lists every held server.
func (bridgeFormat) listed(snap endpoint.Snapshot) endpoint.Snapshot { return snap }

func (bridgeFormat) decode(b []byte) ([]endpoint.Endpoint, []byte, bool) {
	var doc FileDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, false // not ours or corrupt: replaced by the next write
	}
	servers, err := json.Marshal(doc.Servers)
	if err != nil {
		return nil, nil, false
	}
	var eps []endpoint.Endpoint
	for _, r := range doc.Servers {
		if e, ok := r.Endpoint(); ok {
			eps = append(eps, e)
		}
	}
	return eps, servers, true
}

// fileSDFormat is Prometheus file_sd: the JSON list of target groups.
type fileSDFormat struct {
	id  promsd.Identity
	sel promsd.Selection
}

func (f fileSDFormat) key(snap endpoint.Snapshot) ([]byte, error) {
	return promsd.Marshal(promsd.Groups(f.id, f.sel, snap.Endpoints))
}

func (fileSDFormat) document(_ endpoint.Snapshot, key []byte, _ time.Time) ([]byte, error) {
	return append(slices.Clone(key), '\n'), nil
}

// listed implements fileFormat: the servers sel names.
func (f fileSDFormat) listed(snap endpoint.Snapshot) endpoint.Snapshot {
	if f.sel == promsd.All {
		return snap
	}
	return readyOnly(snap)
}

// readyOnly returns snap with its ready servers only (Check.State.IsReady:
// with an app check, those whose check passes; without one, every server),
// as sd_targets ready lists them.
func readyOnly(snap endpoint.Snapshot) endpoint.Snapshot {
	ready := snap
	ready.Endpoints = slices.DeleteFunc(slices.Clone(snap.Endpoints), func(e endpoint.Endpoint) bool { return !e.Check.State.IsReady() })
	return ready
}

func (f fileSDFormat) decode(b []byte) ([]endpoint.Endpoint, []byte, bool) {
	var groups []promsd.Group
	if err := json.Unmarshal(b, &groups); err != nil {
		return nil, nil, false
	}
	var eps []endpoint.Endpoint
	for _, g := range groups {
		for _, t := range g.Targets {
			if ap, err := netip.ParseAddrPort(t); err == nil && ap.Port() != 0 {
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) // as Groups writes them
				e := endpoint.Endpoint{Addr: ap, Interface: g.Labels[promsd.LabelInterface]}
				if f.sel == promsd.All { // else every target listed is ready
					e.Check.State, _ = endpoint.ParseHealth(g.Labels[promsd.LabelHealth])
				}
				eps = append(eps, e)
			}
		}
	}
	return eps, bytes.TrimSpace(b), true
}

// maxLinkHops bounds symbolic link resolution, as the kernel's ELOOP.
const maxLinkHops = 40

// resolveLink follows path through symbolic links to the final name, which
// may not exist (a dangling link names the file to create). It returns path
// unchanged when it is not a link.
func resolveLink(path string) (string, error) {
	for range maxLinkHops {
		st, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && st.Mode()&fs.ModeSymlink == 0) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = dest
	}
	return "", fmt.Errorf("more than %d symbolic links", maxLinkHops)
}

// Name implements Sink.
func (f *File) Name() string { return "file" }

func serversJSON(snap endpoint.Snapshot) ([]byte, []Record, error) {
	recs := make([]Record, 0, len(snap.Endpoints))
	for _, e := range snap.Endpoints {
		recs = append(recs, NewRecord(e, false))
	}
	b, err := json.Marshal(recs)
	return b, recs, err
}

// read returns the endpoints of the document on disk and its key (nil
// key when there is none, or it is not a document of the sink's format:
// it is replaced by the next write).
func (f *File) read() ([]endpoint.Endpoint, []byte, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("file sink: read %s: %w", f.path, err)
	}
	eps, key, ok := f.format.decode(b)
	if !ok {
		return nil, nil, nil
	}
	return eps, key, nil
}

// Plan implements Planner: what Apply would change in the file.
func (f *File) Plan(_ context.Context, snap endpoint.Snapshot) (endpoint.Diff, error) {
	eps, _, err := f.read()
	if err != nil {
		return endpoint.Diff{}, err
	}
	return endpoint.Between(snapshotOf(eps).Endpoints, f.format.listed(snap).Endpoints), nil
}

// snapshotOf returns eps sorted and deduplicated.
func snapshotOf(eps []endpoint.Endpoint) endpoint.Snapshot {
	var s endpoint.Snapshot
	s.Endpoints = endpoint.Sorted(eps)
	s.Endpoints = slices.CompactFunc(s.Endpoints, func(a, b endpoint.Endpoint) bool { return a.Addr == b.Addr })
	return s
}

// Apply implements Sink.
func (f *File) Apply(_ context.Context, snap endpoint.Snapshot) (Result, error) {
	servers, err := f.format.key(snap)
	if err != nil {
		return Result{}, fmt.Errorf("file sink: encode: %w", err)
	}
	if f.last == nil {
		eps, onDisk, err := f.read()
		if err != nil {
			return Result{}, err
		}
		f.prev, f.last = snapshotOf(eps), onDisk
		if f.last == nil {
			f.last = []byte{} // known: nothing usable on disk
		}
	}
	if bytes.Equal(servers, f.last) {
		return Result{}, nil
	}
	doc, err := f.format.document(snap, servers, f.clock.Now())
	if err != nil {
		return Result{}, fmt.Errorf("file sink: encode: %w", err)
	}
	if err := writeAtomic(f.path, doc); err != nil {
		return Result{}, err
	}
	listed := f.format.listed(snap)
	d := endpoint.Between(f.prev.Endpoints, listed.Endpoints)
	f.prev, f.last = listed, servers
	return Result{Diff: d, Writes: 1}, nil
}

// Close implements Sink. Every Apply is durable, so there is nothing left;
// the file is kept on exit: it describes what was last seen.
func (f *File) Close(context.Context) error { return nil }

// writeAtomic replaces path with data so that readers never see a partial
// file, keeping an existing file's mode and owner. A symbolic link is
// resolved at each write (it may be retargeted while the bridge runs): the
// temporary file is made in the target's directory and renamed over the
// target, and the link stays.
func writeAtomic(path string, data []byte) (err error) {
	path, err = resolveLink(path)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	dir := filepath.Dir(path)
	mode := fs.FileMode(0o644)
	uid, gid := -1, -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("file sink: create temporary file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("file sink: write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("file sink: chmod %s: %w", tmp.Name(), err)
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		if err = tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("file sink: keep owner %d:%d of %s: %w", uid, gid, path, err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("file sink: close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("file sink: rename into %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file sink: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync directory %s: %w", dir, err)
	}
	return nil
}
