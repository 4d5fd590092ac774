package consulcluster

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// This file starts, stops and kills the servers of a Cluster.

// spawn starts server i's process without waiting for it.
func (c *Cluster) spawn(i int) error {
	s := c.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("server %s already running (pid %d)", s.Name, s.pid)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("server %s log: %w", s.Name, err)
	}
	fmt.Fprintf(logf, "==== consulcluster: starting %s at %s\n", s.Name, time.Now().Format(time.RFC3339Nano))
	// `ip netns exec` execs consul, so the PID is consul's.
	cmd := s.Host.Command(context.Background(), c.bin, "agent", "-config-file", s.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start server %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done, s.pid = cmd, done, cmd.Process.Pid
	return nil
}

// signal sends sig to server s and waits up to grace for it to exit, then
// SIGKILLs it. It is a no-op when s is not running.
func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig) // pidfd-backed: never hits a reused PID
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done, s.pid = nil, nil, 0
}

func (s *Server) kill() { s.signal(syscall.SIGKILL, time.Minute) }

// Kill SIGKILLs server i by PID and waits for it to exit: a crash. No-op
// when it is not running.
func (c *Cluster) Kill(i int) { c.Servers[i].kill() }

// Stop SIGTERMs server i and waits (SIGKILL after 10 s). Without
// Options.LeaveOnTerminate the server shuts down without leaving: the
// others see it fail, as after Kill, but its data directory is flushed
// cleanly.
func (c *Cluster) Stop(i int) { c.Servers[i].signal(syscall.SIGTERM, 10*time.Second) }

// Start restarts a stopped or killed server i with its data directory and
// waits (Options.ReadyTimeout) until WaitReady holds again: a leader, and
// every running server, i included, a healthy voter. A server that
// autopilot removed meanwhile rejoins through retry_join as a non-voter
// and is promoted after server_stabilization_time. A server restarted
// before autopilot noticed its death is still a voter in the leader's raft
// configuration: it is back as soon as the leader's replication reaches it
// (it then reports the leader itself, which Leader checks), typically within
// a few hundred milliseconds. Failures are fatal.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.spawn(i); err != nil {
		c.t.Fatalf("consulcluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		c.t.Fatalf("consulcluster: %s restarted but cluster not ready after %s: %v", c.Servers[i].Name, c.opts.ReadyTimeout, err)
	}
}

// StartAll (re)starts every stopped or killed server at once and waits
// (Options.ReadyTimeout) until the cluster is ready: after a whole-cluster
// outage no single server can elect a leader alone, so Start, which waits
// for one, cannot bring them back one by one. With wipe, each server's data
// directory is emptied first: a data loss, a new cluster at the same
// addresses. Failures are fatal.
func (c *Cluster) StartAll(wipe bool) {
	c.t.Helper()
	for i, s := range c.Servers {
		if c.Running(i) {
			c.t.Fatalf("consulcluster: StartAll: %s is running", s.Name)
		}
		if wipe {
			if err := os.RemoveAll(s.DataDir); err != nil {
				c.t.Fatalf("consulcluster: wipe %s: %v", s.DataDir, err)
			}
			if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
				c.t.Fatalf("consulcluster: wipe %s: %v", s.DataDir, err)
			}
		}
	}
	for i := range c.Servers {
		if err := c.spawn(i); err != nil {
			c.t.Fatalf("consulcluster: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		c.t.Fatalf("consulcluster: all servers restarted but cluster not ready after %s: %v", c.opts.ReadyTimeout, err)
	}
}
