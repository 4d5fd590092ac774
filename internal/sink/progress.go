package sink

import "context"

type progressKey struct{}

// WithProgress returns a context under which a sink's Apply reports every
// registry write as it happens, by calling fn (from any goroutine), so that
// metrics move during an apply of thousands of writes rather than after it.
// The runner counts what was reported and adds only the rest of
// Result.Writes when Apply returns.
func WithProgress(ctx context.Context, fn func(writes int)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Wrote reports n registry writes just made by the Apply running under ctx.
// Writes reported here still count in Result.Writes. It does nothing when
// ctx carries no progress function.
func Wrote(ctx context.Context, n int) {
	if fn, ok := ctx.Value(progressKey{}).(func(int)); ok && n > 0 {
		fn(n)
	}
}
