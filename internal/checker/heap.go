package checker

import "time"

// dueHeap is a min-heap (container/heap) of targets by due time. The due
// time is kept inline, as nanoseconds from the scheduler's base time, so
// that ordering 10,000 targets compares integers in one array instead of
// following a pointer per comparison; each target knows its index.
type dueHeap []dueEntry

type dueEntry struct {
	at int64 // due: nanoseconds since Checks.base
	t  *target
}

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].t.index, h[j].t.index = i, j
}

func (h *dueHeap) Push(x any) {
	e := x.(dueEntry)
	e.t.index = len(*h)
	*h = append(*h, e)
}

func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	e.t.index = -1
	return e
}

// dueAt is the time of a due time in heap form.
func dueAt(base time.Time, at int64) time.Time { return base.Add(time.Duration(at)) }
