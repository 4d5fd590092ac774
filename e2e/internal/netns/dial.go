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
// in, so the connection keeps working after the thread switches back.
func Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	return DialFrom(ctx, ns, network, "", addr)
}

// DialFrom is Dial from the local address local ("10.213.1.20:0"; ""
// lets the kernel choose), for a client holding several addresses of its
// namespace.
func DialFrom(ctx context.Context, ns, network, local, addr string) (net.Conn, error) {
	var d net.Dialer
	if local != "" {
		la, err := net.ResolveTCPAddr(network, local)
		if err != nil {
			return nil, fmt.Errorf("local address %q: %w", local, err)
		}
		d.LocalAddr = la
	}
	var c net.Conn
	err := Do(ns, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens on addr ("10.213.1.11:8000") with a socket created inside
// the named network namespace. The listener, and every connection it
// accepts, belong to that namespace, so the caller serves them from any
// goroutine: a test can run a server inside a namespace from its own
// process.
func Listen(ctx context.Context, ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() error {
		var err error
		ln, err = (&net.ListenConfig{}).Listen(ctx, network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is Listen for a packet socket ("udp4", "10.213.1.11:9999").
func ListenPacket(ctx context.Context, ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := Do(ns, func() error {
		var err error
		pc, err = (&net.ListenConfig{}).ListenPacket(ctx, network, addr)
		return err
	})
	return pc, err
}

// Do runs fn on an OS thread switched into the named network namespace,
// and waits for it: sockets fn creates belong to that namespace for their
// whole life. fn must not start goroutines that expect the namespace (they
// run on other threads). The thread is not unlocked if switching back
// fails: the runtime then discards it instead of reusing a thread in the
// wrong namespace.
func Do(ns string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
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
