package discover_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// Find every server on the LAN, configured like the upstream client:
// defaults, then DISCOVERY_CLIENT_* variables, then what the program fixes.
// (Compiled, not run by go test: it would broadcast.)
func ExampleDiscover() {
	opts, err := discover.OptionsFromEnv(func(o *discover.Options) { o.Timeout = 2 * time.Second })
	if err != nil {
		log.Fatal(err) // names the variable and its value, e.g. DISCOVERY_CLIENT_PORT "x"
	}
	servers, err := discover.Discover(context.Background(), opts)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range servers {
		fmt.Printf("%s:%d from %s on %s (%s)\n", s.IP, s.Port, s.Source, s.Interface, s.Raw)
	}
}

// Take the first server that answers, logging to slog. DiscoverOne returns
// within a millisecond of the first reply instead of waiting the timeout.
// (Compiled, not run by go test: it would broadcast.)
func ExampleDiscoverOne() {
	opts := discover.DefaultOptions()
	opts.Timeout = 10 * time.Second
	opts.Whitelist = []string{"eth0"}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, ok, err := discover.DiscoverOne(context.Background(), opts)
	switch {
	case err != nil:
		log.Fatal(err)
	case !ok:
		fmt.Println("no server answered")
	default:
		fmt.Printf("http://%s/\n", s.Endpoint())
	}
}

// Options from a given environment, as upstream's ClientConfig.from_env()
// reads it, with an override on top.
func ExampleLoadOptions() {
	environ := map[string]string{
		"DISCOVERY_CLIENT_TIMEOUT":              "1.5",
		"DISCOVERY_CLIENT_INTERFACES_WHITELIST": "eth0,eth1",
		"DISCOVERY_CLIENT_ENABLE_SUBNET_SCAN":   "no",
		"DISCOVERY_CLIENT_DEFAULT_PORT":         "8080",
		"DISCOVERY_CLIENT_RETRIES":              "5",
	}
	lookup := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }

	opts, err := discover.LoadOptions(lookup, func(o *discover.Options) { o.Retries = 1 })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("port:", opts.Port)
	fmt.Println("timeout:", opts.Timeout)
	fmt.Println("retries:", opts.Retries)
	fmt.Println("subnet scan:", opts.SubnetScan)
	fmt.Println("whitelist:", opts.Whitelist)
	fmt.Println("default port:", opts.DefaultPort)

	environ["DISCOVERY_CLIENT_TIMEOUT"] = "soon"
	_, err = discover.LoadOptions(lookup)
	fmt.Println(err)
	// Output:
	// port: 9999
	// timeout: 1.5s
	// retries: 1
	// subnet scan: false
	// whitelist: [eth0 eth1]
	// default port: 8080
	// timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon": want seconds (5, 0.5) or a duration (500ms, 1m)
}

// Parse replies as the upstream client does: surrounding whitespace is
// stripped, the port is optional, odd spellings are normalised, and
// anything else is not a reply.
func ExampleParseReply() {
	prefix := []byte("SERVER_IP:")
	for _, reply := range []string{
		"SERVER_IP:192.168.1.20",
		"SERVER_IP: 10.1.2.3:8443\n",
		"SERVER_IP:01.002.3.4",
		"SERVER_IP:10.1.2",
		"HELLO",
	} {
		ip, port, hasPort, ok := discover.ParseReply([]byte(reply), prefix)
		fmt.Printf("%q: ip=%v port=%d hasPort=%v ok=%v\n", reply, ip, port, hasPort, ok)
	}
	// Output:
	// "SERVER_IP:192.168.1.20": ip=192.168.1.20 port=0 hasPort=false ok=true
	// "SERVER_IP: 10.1.2.3:8443\n": ip=10.1.2.3 port=8443 hasPort=true ok=true
	// "SERVER_IP:01.002.3.4": ip=1.2.3.4 port=0 hasPort=false ok=true
	// "SERVER_IP:10.1.2": ip=invalid IP port=0 hasPort=false ok=false
	// "HELLO": ip=invalid IP port=0 hasPort=false ok=false
}
