package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// WithEnv returns a view of the host whose commands run with exactly env as
// their environment (it does not inherit the test's environment).
func (h *Host) WithEnv(env []string) *Host {
	c := *h
	c.Env = slices.Clone(env)
	if c.Env == nil {
		c.Env = []string{}
	}
	return &c
}

// Command returns, unstarted, `ip netns exec <ns> argv...` bound to ctx. The
// process that `ip` execs keeps the PID of the started command.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"netns", "exec", h.NS}, argv...)
	cmd := exec.CommandContext(ctx, h.lab.ip, args...)
	if h.Env != nil {
		cmd.Env = h.Env
	}
	return cmd
}

// Result is the outcome of Host.Run.
type Result struct {
	Stdout, Stderr string
	ExitCode       int // -1 when the process did not exit normally (signal, failed start)
	Elapsed        time.Duration
	Err            error // nil on exit status 0
}

// Run runs argv inside the host namespace to completion (or until ctx ends,
// which kills it) and returns its captured output and exit status.
func (h *Host) Run(ctx context.Context, argv ...string) Result {
	cmd := h.Command(ctx, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{
		Stdout:   stdout.String(),
		Stderr:   stderr.String(),
		ExitCode: -1,
		Elapsed:  time.Since(start),
		Err:      err,
	}
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	return r
}

// Start starts argv inside the host namespace and returns its handle. When ctx
// ends the process gets SIGTERM, then SIGKILL after DefaultGrace. The Lab kills
// it at teardown if it still runs.
func (h *Host) Start(ctx context.Context, argv ...string) (*Proc, error) {
	cmd := h.Command(ctx, argv...)
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = DefaultGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q in %s: %w", argv, h.NS, err)
	}
	p.PID = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p, nil
}

// WaitUDPListeners polls `ss` in the host until at least n UDP sockets are
// bound to port, or ctx ends.
func (h *Host) WaitUDPListeners(ctx context.Context, port, n int) error {
	filter := "sport = :" + strconv.Itoa(port)
	for {
		r := h.Run(ctx, "ss", "-H", "-u", "-a", "-n", filter)
		got := 0
		if r.Err == nil {
			for line := range strings.Lines(r.Stdout) {
				if strings.TrimSpace(line) != "" {
					got++
				}
			}
			if got >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d UDP sockets on port %d (last ss: %v %s): %w",
				h.NS, got, n, port, r.Err, strings.TrimSpace(r.Stderr), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// DefaultGrace is how long Stop and context cancellation wait after SIGTERM
// before sending SIGKILL.
const DefaultGrace = 3 * time.Second

// Proc is a process started with Host.Start. Its output is captured and can be
// read while it runs.
type Proc struct {
	PID int

	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

// Stop sends SIGTERM, waits up to DefaultGrace, then SIGKILLs, and returns the
// process's exit error (nil for a clean exit 0).
func (p *Proc) Stop() error { return p.StopWithin(DefaultGrace) }

// StopWithin is Stop with a custom grace period.
func (p *Proc) StopWithin(grace time.Duration) error {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM) // pidfd-backed: never hits a reused PID
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
		}
	}
	return p.Wait()
}

// Signal sends sig to the process (pidfd-backed: never a reused PID).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait blocks until the process exits and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status, or -1 while running or when killed by a signal.
func (p *Proc) ExitCode() int {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Output returns what the process wrote so far.
func (p *Proc) Output() (stdout, stderr string) {
	return p.stdout.String(), p.stderr.String()
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
