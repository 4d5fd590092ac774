package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"
)

// allocEvent is printed after each step of alloc.
type allocEvent struct {
	Event string `json:"event"` // "alloc"
	MiB   int    `json:"mib"`   // allocated and touched so far
}

func runAlloc(ctx context.Context, args []string) error {
	fs := newFlagSet("alloc")
	mib := fs.Int("mib", 0, "MiB to allocate and touch (required)")
	step := fs.Int("step", 4, "MiB per step")
	pause := fs.Duration("pause", 10*time.Millisecond, "pause between steps")
	hold := fs.Duration("hold", 0, "how long to hold the memory before exiting (0: until SIGTERM)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mib < 1 || *step < 1 || *pause < 0 || *hold < 0 {
		return usageError{fmt.Errorf("-mib %d and -step %d must be >= 1, -pause %s and -hold %s >= 0", *mib, *step, *pause, *hold)}
	}
	ready("alloc", map[string]any{"pid": os.Getpid()})
	start := time.Now()
	var held [][]byte
	got := 0
steps:
	for got < *mib {
		n := min(*step, *mib-got)
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page so it is resident and charged
		}
		held = append(held, b)
		got += n
		emit(allocEvent{Event: "alloc", MiB: got})
		select {
		case <-ctx.Done():
			break steps
		case <-time.After(*pause):
		}
	}
	switch {
	case ctx.Err() != nil: // SIGTERM during the steps: report what was held
	case *hold > 0:
		select {
		case <-ctx.Done():
		case <-time.After(*hold):
		}
	default:
		<-ctx.Done()
	}
	s := &summary{Mode: "alloc", AllocatedMiB: got}
	s.finish(start, nil)
	runtime.KeepAlive(held)
	return nil
}
