package discover

import (
	"context"
	"log/slog"
	"time"
)

// logger is where a Client's events go: an slog.Handler, handed each event
// as one Record of typed attributes. The library's callers give their own
// *slog.Logger (Options.Logger, or New's log); the CLI gives one over
// zerolog (zerolog.NewSlogHandler), which writes the same attributes as
// zerolog fields. Nothing is encoded in between.
type logger struct{ h slog.Handler }

// newLogger returns l's handler; nil logs nothing.
func newLogger(l *slog.Logger) logger {
	if l == nil {
		return logger{slog.DiscardHandler}
	}
	return logger{l.Handler()}
}

// enabled reports whether events at level are wanted; a hot path checks
// it before building attributes that cost something (an address's
// String).
func (l logger) enabled(level slog.Level) bool { return l.h.Enabled(context.Background(), level) }

// log hands one event to the handler if it wants the level. The Record
// carries no source position (slog.Logger would look it up with
// runtime.Callers on every event): the message and fields say where.
func (l logger) log(level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !l.h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = l.h.Handle(ctx, r) // a handler's write error has nowhere better to go
}
