package forge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Summary is the forger's final line: what a mode sent and received. Fields
// a mode does not use are zero.
type Summary struct {
	Mode       string  `json:"mode"`
	Sent       int64   `json:"sent"`        // datagrams (or probes) written
	SendErrors int64   `json:"send_errors"` // sends that failed after retries
	LastError  string  `json:"last_error"`  // the last send error, if any
	Probes     int64   `json:"probes"`      // answer: probes answered
	Received   int64   `json:"received"`    // answer: datagrams read; listen, probe: replies counted
	ElapsedS   float64 `json:"elapsed_s"`   // from ready to done
	RatePPS    float64 `json:"rate_pps"`    // Sent / ElapsedS

	DistinctSrcs     int    `json:"distinct_srcs"`      // listen: distinct source ip:port
	DistinctDstPorts int    `json:"distinct_dst_ports"` // listen: distinct destination ports
	MinDstPort       uint16 `json:"min_dst_port"`       // listen
	MaxDstPort       uint16 `json:"max_dst_port"`       // listen

	AllocatedMiB int `json:"allocated_mib"` // alloc
}

// ProbeAnswer is an answer-mode event: one probe and the burst sent back.
type ProbeAnswer struct {
	From     string  `json:"from"`      // the prober's ip:port
	Sent     int64   `json:"sent"`      // forged replies written
	Errors   int64   `json:"errors"`    // replies that failed
	FirstN   uint64  `json:"first_n"`   // identity counter of the first reply
	ElapsedS float64 `json:"elapsed_s"` // time to write the burst
	RatePPS  float64 `json:"rate_pps"`
}

// Recv is a listen-mode event: one datagram received.
type Recv struct {
	Via        string `json:"via"`      // "udp" (a socket on the port) or "raw" (any port)
	Src        string `json:"src"`      // source ip:port as the receiver sees it
	Dst        string `json:"dst"`      // raw only: destination address
	DstPort    uint16 `json:"dst_port"` // destination port
	PayloadHex string `json:"payload_hex"`
}

// Round is a probe-mode event: the replies to one probe.
type Round struct {
	Round            int     `json:"round"`
	Replies          int64   `json:"replies"`
	DistinctPayloads int     `json:"distinct_payloads"`
	NewPayloads      int     `json:"new_payloads"` // payloads no earlier round saw
	DistinctSrcs     int     `json:"distinct_srcs"`
	FirstS           float64 `json:"first_s"` // from the probe to the first reply
	LastS            float64 `json:"last_s"`  // from the probe to the last reply
	Sample           []struct {
		Src     string `json:"src"`
		Payload string `json:"payload"`
	} `json:"sample"` // the first few replies
}

// Proc is a running forger. Its netns.Proc methods (Stop, Wait, Output,
// PID...) work as usual; the methods below read its JSON lines.
type Proc struct {
	*netns.Proc
	Argv []string
}

// readyTimeout bounds how long Start waits for the "ready" line.
const readyTimeout = 15 * time.Second

// Start runs `forger mode args...` in h, waits until it reports its sockets
// open, and returns it. Failures are fatal to t. The lab kills it at
// teardown; Stop it first to get its Summary.
func Start(t testing.TB, h *netns.Host, mode string, args ...string) *Proc {
	t.Helper()
	argv := append([]string{Bin(t), mode}, args...)
	np, err := h.Start(context.Background(), argv...)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	p := &Proc{Proc: np, Argv: argv}
	deadline := time.Now().Add(readyTimeout)
	for !p.hasEvent("ready") {
		if p.Exited() {
			out, errOut := p.Output()
			t.Fatalf("forge: %q in %s exited %d before ready: %s%s", argv[1:], h.NS, p.ExitCode(), errOut, out)
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			t.Fatalf("forge: %q in %s not ready after %s", argv[1:], h.NS, readyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

// Run runs `forger mode args...` in h to completion and returns its
// Summary; it fails t on a non-zero exit.
func Run(t testing.TB, h *netns.Host, mode string, args ...string) Summary {
	t.Helper()
	p := Start(t, h, mode, args...)
	if err := p.Wait(); err != nil {
		_, errOut := p.Output()
		t.Fatalf("forge: %q in %s: %v: %s", p.Argv[1:], h.NS, err, errOut)
	}
	s, err := p.Summary()
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return s
}

// Finish sends SIGTERM, waits for the exit and returns the Summary; a
// failed exit or a missing summary is fatal to t.
func (p *Proc) Finish(t testing.TB) Summary {
	t.Helper()
	if err := p.Stop(); err != nil {
		_, errOut := p.Output()
		t.Fatalf("forge: %q: %v: %s", p.Argv[1:], err, errOut)
	}
	s, err := p.Summary()
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return s
}

// Summary parses the "done" line; it fails while the forger runs or if it
// died without one.
func (p *Proc) Summary() (Summary, error) {
	var s Summary
	lines := p.events("done")
	if len(lines) == 0 {
		_, errOut := p.Output()
		return s, fmt.Errorf("%q printed no summary (exited: %t, code %d): %s", p.Argv[1:], p.Exited(), p.ExitCode(), errOut)
	}
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil {
		return s, fmt.Errorf("%q summary %s: %w", p.Argv[1:], lines[len(lines)-1], err)
	}
	return s, nil
}

// Answers returns the answer-mode probe events so far.
func (p *Proc) Answers() ([]ProbeAnswer, error) { return decodeAll[ProbeAnswer](p, "probe") }

// Recvs returns the listen-mode datagrams so far.
func (p *Proc) Recvs() ([]Recv, error) { return decodeAll[Recv](p, "recv") }

// Rounds returns the probe-mode rounds so far.
func (p *Proc) Rounds() ([]Round, error) { return decodeAll[Round](p, "round") }

func decodeAll[T any](p *Proc, event string) ([]T, error) {
	var out []T
	for _, l := range p.events(event) {
		var v T
		if err := json.Unmarshal(l, &v); err != nil {
			return out, fmt.Errorf("%q %s line %s: %w", p.Argv[1:], event, l, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// events returns the complete stdout lines whose "event" is event.
func (p *Proc) events(event string) [][]byte {
	stdout, _ := p.Output()
	var out [][]byte
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var head struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(sc.Bytes(), &head) == nil && head.Event == event {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	return out
}

func (p *Proc) hasEvent(event string) bool { return len(p.events(event)) > 0 }

// WaitRecvs polls until the listener has printed at least n datagrams or
// timeout passes, and returns what it has.
func (p *Proc) WaitRecvs(n int, timeout time.Duration) ([]Recv, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := p.Recvs()
		if err != nil || len(r) >= n {
			return r, err
		}
		if time.Now().After(deadline) {
			return r, errors.New("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
