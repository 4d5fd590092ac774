package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
)

// zerologToSlog returns a zerolog.Logger whose events go to l, so that the
// package-level calls (Discover, DiscoverOne), which take a *slog.Logger,
// share the Client's zerolog logging unchanged. A nil l gives
// zerolog.Nop(): no logging unless asked.
//
// The logger's level is the lowest level l's handler is enabled for when it
// is built, so disabled events are never encoded. Each enabled event (a
// round logs a handful at debug, fewer at info) is zerolog's JSON object,
// decoded once into slog attributes in field order: strings, numbers
// (int64 when whole, else float64), booleans, and objects or arrays as
// slog.Any of their decoded value.
func zerologToSlog(l *slog.Logger) zerolog.Logger {
	if l == nil {
		return zerolog.Nop()
	}
	h := l.Handler()
	level := zerolog.Disabled
	for _, lv := range []zerolog.Level{zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel} {
		if h.Enabled(context.Background(), slogLevel(lv)) {
			level = lv
			break
		}
	}
	return zerolog.New(slogWriter{h}).Level(level)
}

// slogLevel maps a zerolog level to the slog level of the same name;
// levels above error (fatal, panic, which this package never logs) are
// error.
func slogLevel(l zerolog.Level) slog.Level {
	switch {
	case l <= zerolog.DebugLevel:
		return slog.LevelDebug
	case l == zerolog.InfoLevel:
		return slog.LevelInfo
	case l == zerolog.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// slogWriter is a zerolog.LevelWriter that hands every event to an
// slog.Handler as a Record.
type slogWriter struct{ h slog.Handler }

func (w slogWriter) Write(p []byte) (int, error) { return w.WriteLevel(zerolog.InfoLevel, p) }

// WriteLevel decodes the JSON event p: zerolog's message field becomes the
// Record's message, its level field is dropped (level says it), every
// other field becomes an attribute. An event that does not decode (never
// from zerolog's JSON encoder) is passed on whole as the message.
func (w slogWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	ctx := context.Background()
	lv := slogLevel(level)
	if !w.h.Enabled(ctx, lv) {
		return len(p), nil
	}
	msg, attrs, err := decodeEvent(p)
	if err != nil {
		msg, attrs = string(bytes.TrimSpace(p)), nil
	}
	r := slog.NewRecord(time.Now(), lv, msg, 0)
	r.AddAttrs(attrs...)
	return len(p), w.h.Handle(ctx, r)
}

func decodeEvent(p []byte) (msg string, attrs []slog.Attr, err error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return "", nil, err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, err
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", nil, err
		}
		switch key {
		case zerolog.MessageFieldName:
			msg, _ = v.(string)
			continue
		case zerolog.LevelFieldName:
			continue
		}
		attrs = append(attrs, slogAttr(key, v))
	}
	return msg, attrs, nil
}

func slogAttr(key string, v any) slog.Attr {
	switch x := v.(type) {
	case string:
		return slog.String(key, x)
	case bool:
		return slog.Bool(key, x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return slog.Int64(key, n)
		}
		f, _ := x.Float64()
		return slog.Float64(key, f)
	}
	return slog.Any(key, v)
}
