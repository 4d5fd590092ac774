package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestDiscoverFindsAllAndOneStopsAtFirst(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 8443))
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3"))
	o := testOptions(p)
	o.One = true // Discover ignores it

	res, err := settledRound(t, nil, 2, func(s *settler) (Result, error) {
		servers, err := discover(context.Background(), o, l, s.install)
		return Result{Servers: servers}, err
	})
	servers := res.Servers
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if got, want := endpoints(servers), []string{"10.213.0.2:8000", "10.213.0.3:8443"}; !slices.Equal(got, want) {
		t.Fatalf("discover = %v, want %v", got, want)
	}

	// discoverOne sets One itself. Nothing else ends its round within 10
	// minutes (no Settle, no ctx deadline), so a discoverOne that returns
	// at all stopped at the first reply.
	o.One, o.Timeout, o.Settle = false, longRound, 0
	var s Server
	var ok bool
	noHang(t, "discoverOne", func() { s, ok, err = discoverOne(context.Background(), o, l, nil) })
	if err != nil || !ok {
		t.Fatalf("discoverOne = %+v, %v, %v", s, ok, err)
	}
	if !strings.HasPrefix(s.Raw, "SERVER_IP:10.213.0.") || !s.Source.IsValid() || s.Interface != "lo" {
		t.Errorf("discoverOne server %+v", s)
	}
}

func TestDiscoverOneNoneIsNotAnError(t *testing.T) {
	p := freePort(t) // nobody answers
	o := testOptions(p)
	o.Timeout, o.Settle = 200*time.Millisecond, 0
	s, ok, err := discoverOne(context.Background(), o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil)
	if ok || err != nil || s != (Server{}) {
		t.Fatalf("discoverOne = %+v, %v, %v; want zero, false, nil", s, ok, err)
	}
}

func TestDiscoverErrors(t *testing.T) {
	o := DefaultOptions()
	o.Timeout = 0
	if _, err := discover(context.Background(), o, lister(t), nil); err == nil || !strings.Contains(err.Error(), "timeout: must be > 0, got 0s") {
		t.Errorf("invalid options: %v", err)
	}
	o = testOptions(freePort(t))
	o.Whitelist = []string{"eth9"}
	if _, _, err := discoverOne(context.Background(), o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), nil); !errors.Is(err, ErrNoInterfaces) {
		t.Errorf("whitelist of nothing: %v, want ErrNoInterfaces", err)
	}
}

// syncBuf is a goroutine-safe buffer for an slog handler.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestDiscoverLogsToSlog(t *testing.T) {
	p := freePort(t)
	// 127.0.0.1 in the payload: AddressAuto registers the source and logs why.
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("127.0.0.1", 0))
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))

	var buf syncBuf
	o := testOptions(p)
	o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := settledRound(t, nil, 1, func(s *settler) (Result, error) {
		servers, err := discover(context.Background(), o, l, s.install)
		return Result{Servers: servers}, err
	})
	servers := res.Servers
	if err != nil || len(servers) != 1 {
		t.Fatalf("discover = %v, %v", servers, err)
	}
	if s := servers[0]; s.AddressFrom != AddressSource || s.IP != netip.MustParseAddr("127.0.0.2") || s.PayloadIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("server %+v: want the source address 127.0.0.2 with address_from source", s)
	}
	out := buf.String()
	for _, want := range []string{"level=INFO", `msg="reply advertises an address`, "payload_ip=127.0.0.1", "source_ip=127.0.0.2", "reason="} {
		if !strings.Contains(out, want) {
			t.Errorf("slog output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=DEBUG") {
		t.Errorf("debug records reached an info handler:\n%s", out)
	}
}

// TestClientLogsToZerolog runs a round logging through zerolog's slog
// handler, as the CLI does: each event is one zerolog JSON line with the
// level, message and typed fields the Client gave it, and none below the
// zerolog logger's level.
func TestClientLogsToZerolog(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("127.0.0.1", 0))
	var buf syncBuf
	zl := zerolog.New(&buf).Level(zerolog.DebugLevel)
	c := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")), slog.New(zerolog.NewSlogHandler(zl)))
	if res, err := settledRoundOf(t, c, 1); err != nil || len(res.Servers) != 1 {
		t.Fatalf("round = %v, %v", res.Servers, err)
	}
	want := map[string]map[string]any{
		"reply advertises an address that cannot be registered; using the packet's source address": {
			"level": "info", "payload_ip": "127.0.0.1", "source_ip": "127.0.0.2", "reason": "loopback"},
		"probe sent":     {"level": "debug", "interface": "fake2", "to": "127.0.0.2:" + strconv.Itoa(int(p))},
		"receive buffer": {"level": "debug", "requested": float64(DefaultRecvBuffer)},
		"round settled":  {"level": "debug", "settle": float64(1000)}, // zerolog's default: milliseconds
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for _, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not one JSON event per line: %q: %v", line, err)
		}
		msg, _ := ev[zerolog.MessageFieldName].(string)
		fields, ok := want[msg]
		if !ok {
			continue
		}
		delete(want, msg)
		for k, v := range fields {
			if ev[k] != v {
				t.Errorf("%q: %s = %v (%T), want %v", msg, k, ev[k], ev[k], v)
			}
		}
	}
	for msg := range want {
		t.Errorf("no %q event in:\n%s", msg, buf.String())
	}

	buf = syncBuf{}
	quiet := newClient(t, testOptions(p), lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")),
		slog.New(zerolog.NewSlogHandler(zerolog.New(&buf).Level(zerolog.WarnLevel))))
	if _, err := settledRoundOf(t, quiet, 1); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "" {
		t.Errorf("a warn-level zerolog logger got: %s", got)
	}
}
