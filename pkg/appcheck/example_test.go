package appcheck_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// A program checks a server's app with the same options the bridge takes:
// here GET /healthz against a test server on loopback that is down for
// maintenance.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	o := appcheck.DefaultOptions()
	o.Kind, o.Path = appcheck.HTTP, "/healthz"
	c, err := appcheck.New(o)
	if err != nil {
		fmt.Println(err)
		return
	}
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	r := c.Check(context.Background(), addr)
	// r.Output reads "HTTP GET /healthz: 503 Service Unavailable in 1 ms",
	// with the latency measured.
	fmt.Println(r.OK, r.Status, r.Reason)
	// Output: false 503 503 Service Unavailable
}
