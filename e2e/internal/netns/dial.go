package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Dial dials addr from a socket created inside the named network namespace
// (/var/run/netns/<ns>). A socket belongs to the namespace it was created
// in, so the connection keeps working after the thread switches back. The
// thread is not unlocked if switching back fails: the runtime then discards
// it instead of reusing a thread in the wrong namespace.
func Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	return DialFrom(ctx, ns, network, "", addr)
}

// DialFrom is Dial from the local address local ("10.213.1.20:0"; ""
// lets the kernel choose), for a client holding several addresses of its
// namespace.
func DialFrom(ctx context.Context, ns, network, local, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	var d net.Dialer
	if local != "" {
		la, err := net.ResolveTCPAddr(network, local)
		if err != nil {
			return nil, fmt.Errorf("local address %q: %w", local, err)
		}
		d.LocalAddr = la
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open netns %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns %s: %w", ns, err)}
			return
		}
		c, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Transport returns an HTTP transport whose connections are made inside
// the named namespace.
func Transport(ns string) *http.Transport {
	return &http.Transport{
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return Dial(ctx, ns, network, addr)
		},
	}
}

// HTTPClient returns a client for servers inside the named namespace (no
// keep-alive: each request dials afresh, as a prober would).
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	tr := Transport(ns)
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: timeout}
}
