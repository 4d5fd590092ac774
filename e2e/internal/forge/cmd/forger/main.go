// Command forger is the attacker of the end-to-end tests: it sends UDP
// datagrams with forged IPv4 source addresses and ports through a raw
// socket, answers discovery probes with floods of forged replies, sprays a
// port range blindly, and, to check all that, listens and probes like a
// client. A last mode, alloc, allocates memory in steps for the memory
// cgroup tests. Package forge builds it and runs it inside lab namespaces.
//
// Every mode writes JSON lines to stdout: {"event":"ready",...} once its
// sockets are open, events of its own, and {"event":"done",...} with its
// counts when it finishes or gets SIGTERM/SIGINT. Usage errors exit 2,
// runtime errors 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type mode struct {
	run   func(ctx context.Context, args []string) error
	usage string
}

var modes = map[string]mode{
	"send":   {runSend, "send forged datagrams: -d 'SRC DST ENC:PAYLOAD'..., -count, -rate"},
	"answer": {runAnswer, "answer each probe on -listen with -per-probe forged replies"},
	"spray":  {runSpray, "send forged replies to every port of -ports on -dst"},
	"listen": {runListen, "print datagrams received on -addr (UDP) or any port (-raw)"},
	"probe":  {runProbe, "broadcast a probe like the bridge and count the replies"},
	"alloc":  {runAlloc, "allocate and touch -mib MiB in -step MiB steps, then hold"},
}

// usageError marks a bad command line (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func main() {
	if len(os.Args) < 2 || modes[os.Args[1]].run == nil {
		fmt.Fprintf(os.Stderr, "usage: forger MODE [flags]; MODE is one of:\n")
		names := make([]string, 0, len(modes))
		for n := range modes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "  %-7s %s\n", n, modes[n].usage)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := modes[os.Args[1]].run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "forger %s: %v\n", os.Args[1], err)
		if _, ok := err.(usageError); ok {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var stdout = json.NewEncoder(os.Stdout)

// emit writes one JSON line; a failed write to stdout has nowhere to go.
func emit(v any) { _ = stdout.Encode(v) }

// ready announces that the mode's sockets are open.
func ready(mode string, extra map[string]any) {
	m := map[string]any{"event": "ready", "mode": mode}
	for k, v := range extra {
		m[k] = v
	}
	emit(m)
}
