package relay

import "time"

// Stats is a snapshot of a Relay's counters since New, for metrics and
// logs. Bytes are UDP payload bytes; on the wire each datagram carries 28
// more (IPv4 and UDP headers), so the bytes on the wire are BytesIn +
// 28 × Received and BytesOut + 28 × Replies.
type Stats struct {
	// Received counts every datagram read, answered or not; BytesIn their
	// payload bytes.
	Received, BytesIn uint64
	// Relayed counts the probes admitted: their replies were sent, or
	// queued for their delay.
	Relayed uint64
	// Replies counts the replies written; BytesOut their payload bytes.
	Replies, BytesOut uint64
	// SendErrors counts the replies the socket refused.
	SendErrors uint64
	// Dropped counts the datagrams not answered, by Reason. The delayed
	// queue's drops are Dropped[ReasonQueueFull].
	Dropped Drops
	// Queued is how many replies wait for their delay now.
	Queued int
	// RefreshErrors counts the failed readings of the interfaces.
	RefreshErrors uint64
	// Targets is the size of the target set the source offers now, and
	// TargetsAge its age; TargetsOK false when it offers none.
	Targets    int
	TargetsAge time.Duration
	TargetsOK  bool
}

// Stats returns the counters now. Safe to call while Serve runs.
func (r *Relay) Stats() Stats {
	st := Stats{
		Received: r.received.Load(), BytesIn: r.bytesIn.Load(),
		Relayed: r.relayed.Load(),
		Replies: r.replies.Load(), BytesOut: r.bytesOut.Load(),
		SendErrors:    r.sendErrors.Load(),
		RefreshErrors: r.refreshErrors.Load(),
	}
	for i := range st.Dropped {
		st.Dropped[i] = r.drops[i].Load()
	}
	if r.queue != nil {
		st.Queued = r.queue.len()
	}
	set, age, ok := r.targets.Targets()
	st.Targets, st.TargetsAge, st.TargetsOK = len(set), age, ok
	return st
}
