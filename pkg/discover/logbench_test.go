package discover

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkLogEvent measures one log event on a hot path: a rejected reply
// (a Fernet round, a datagram that is no token) logs "reply rejected" at
// debug. "disabled" is the same datagram with the event filtered out, so
// the event's own cost is a case's time minus disabled's.
func BenchmarkLogEvent(b *testing.B) {
	o := DefaultOptions()
	o.Key = mustKey(b, specKey)
	src := netip.MustParseAddrPort("10.0.0.1:9999")
	junk := []byte("not a token")
	for _, bc := range []struct {
		name string
		log  func() *slog.Logger
	}{
		{"library_slog_json", func() *slog.Logger {
			return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}},
		{"cli_zerolog_json", func() *slog.Logger {
			return slog.New(zerolog.NewSlogHandler(zerolog.New(io.Discard).Level(zerolog.DebugLevel).With().Timestamp().Logger()))
		}},
		{"disabled", func() *slog.Logger {
			return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := New(o, lister(b), bc.log(), nil)
			if err != nil {
				b.Fatal(err)
			}
			r := newRound(c, nil, nil, nil, time.Now(), time.Now().Add(time.Hour))
			b.ReportAllocs()
			for b.Loop() {
				r.ingest(junk, src, 0)
			}
		})
	}
}
