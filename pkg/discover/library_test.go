package discover

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDiscoverFindsAllAndOneStopsAtFirst(t *testing.T) {
	p := freePort(t)
	startResponder(t, addrPort("127.0.0.2", p), plainResponder("10.213.0.2", 0))
	startResponder(t, addrPort("127.0.0.3", p), plainResponder("10.213.0.3", 8443))
	l := lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"), fakeIf("fake3", "127.0.1.3", "127.0.0.3"))
	o := testOptions(p)
	o.One = true // Discover ignores it

	servers, err := discover(context.Background(), o, l)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if got, want := endpoints(servers), []string{"10.213.0.2:8000", "10.213.0.3:8443"}; !slices.Equal(got, want) {
		t.Fatalf("discover = %v, want %v", got, want)
	}

	o.One, o.Timeout, o.Settle = false, 10*time.Second, 0
	start := time.Now()
	s, ok, err := discoverOne(context.Background(), o, l)
	if err != nil || !ok {
		t.Fatalf("discoverOne = %+v, %v, %v", s, ok, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("discoverOne took %v with a 10s timeout", el)
	}
	if !strings.HasPrefix(s.Raw, "SERVER_IP:10.213.0.") || !s.Source.IsValid() || s.Interface != "lo" {
		t.Errorf("discoverOne server %+v", s)
	}
}

func TestDiscoverOneNoneIsNotAnError(t *testing.T) {
	p := freePort(t) // nobody answers
	o := testOptions(p)
	o.Timeout = 200 * time.Millisecond
	s, ok, err := discoverOne(context.Background(), o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2")))
	if ok || err != nil || s != (Server{}) {
		t.Fatalf("discoverOne = %+v, %v, %v; want zero, false, nil", s, ok, err)
	}
}

func TestDiscoverErrors(t *testing.T) {
	o := DefaultOptions()
	o.Timeout = 0
	if _, err := discover(context.Background(), o, lister(t)); err == nil || !strings.Contains(err.Error(), "timeout: must be > 0, got 0s") {
		t.Errorf("invalid options: %v", err)
	}
	o = testOptions(freePort(t))
	o.Whitelist = []string{"eth9"}
	if _, _, err := discoverOne(context.Background(), o, lister(t, fakeIf("fake2", "127.0.1.2", "127.0.0.2"))); !errors.Is(err, ErrNoInterfaces) {
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
	servers, err := discover(context.Background(), o, l)
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

func TestZerologToSlog(t *testing.T) {
	var buf syncBuf
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	zl := zerologToSlog(slog.New(h))
	zl.Warn().Str("interface", "eth0").Int("n", 3).Float64("f", 0.5).Bool("b", true).
		Err(errors.New("boom")).Interface("obj", map[string]int{"x": 1}).Msg("hello")
	got := buf.String()
	for _, want := range []string{`"level":"WARN"`, `"msg":"hello"`, `"interface":"eth0"`, `"n":3`, `"f":0.5`, `"b":true`, `"error":"boom"`, `"obj":{"x":1}`} {
		if !strings.Contains(got, want) {
			t.Errorf("record lacks %s: %s", want, got)
		}
	}
	if strings.Count(got, `"level"`) != 1 || strings.Contains(got, `"message"`) {
		t.Errorf("zerolog's level/message fields leaked as attributes: %s", got)
	}

	if z := zerologToSlog(nil); z.GetLevel() != zerologToSlog(slog.New(slog.DiscardHandler)).GetLevel() {
		t.Errorf("nil logger level %v, discard handler level %v: both should log nothing", z.GetLevel(), zerologToSlog(slog.New(slog.DiscardHandler)).GetLevel())
	}
	buf = syncBuf{}
	warnOnly := zerologToSlog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	warnOnly.Info().Msg("quiet")
	warnOnly.Error().Msg("loud")
	if got := buf.String(); strings.Contains(got, "quiet") || !strings.Contains(got, "loud") {
		t.Errorf("warn handler got: %s", got)
	}
}
