package k8s_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/udpprobe"
)

// testK8sRelay is the relay's part of TestK8sChartKubernetesSink (issue
// 32): the DaemonSet's pod, relay_interfaces pinned to a second segment of
// the node (node is the node's address there) with a client and no
// server, relays onto it the ready endpoints of the EndpointSlices it
// writes (relay_source auto: kubernetes). The client finds every server
// through it; a server that stops answering leaves the relayed answers
// within the relay's poll (1 s) and a list of the slice's change, which
// readSlices (endpoint "ip:port" -> ready) observes. want are the
// servers, stop the responder of want[0].
func testK8sRelay(t *testing.T, client *netns.Host, node string,
	readSlices func() (map[string]bool, error), stop *netns.Proc, want []string) {
	t.Helper()
	dev := client.Links()[0].Dev
	harness.Wait(t, 30*time.Second, "the client on the relayed segment finds every server", func() (bool, string) {
		r := harness.Bridge(t, client, nil, "discover", "--json", "--whitelist", dev, "--advertised-addresses", "any", "--timeout", "1")
		var found []harness.Server
		_ = json.Unmarshal([]byte(r.Stdout), &found)
		return r.ExitCode == 0 && len(found) == len(want), r.Stdout
	})
	got, r := harness.DiscoverJSON(t, client, nil, 0, "--whitelist", dev, "--advertised-addresses", "any", "--timeout", "1")
	harness.WantServers(t, got, r, want...)
	for ep, s := range got {
		if s.SourceAddress != node+":9999" {
			t.Errorf("%s answered from %s, want the node's relay %s:9999", ep, s.SourceAddress, node)
		}
	}
	t.Logf("MEASURED: the DaemonSet's pod relays the %d servers of the EndpointSlices onto a segment without a server", len(want))

	// Stop want[0]; probe from two addresses of the client in turn every
	// 250 ms (each within its 8 replies a second), and read the slices
	// every 100 ms.
	gone := want[0]
	var probers []*udpprobe.Prober
	base := client.IP().As4()
	for i := range 2 {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(51 + i)})
		harness.MustHost(t, client, "ip", "addr", "add", ip.String()+"/24", "dev", dev)
		probers = append(probers, udpprobe.New(t, client, ip.String()+":0"))
	}
	bcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{base[0], base[1], base[2], 255}), 9999)
	res := udpprobe.Removal{
		Probers: probers, To: bcast, Payload: []byte("DISCOVER_SERVER"), Every: 250 * time.Millisecond, Server: gone,
		Gone: func() bool {
			sl, err := readSlices()
			return err == nil && !sl[gone]
		},
		After: 4 * time.Second, Timeout: 90 * time.Second,
	}.Run(t, func() { harness.StopResponder(t, stop) })
	if res.LastWith.IsZero() {
		t.Fatalf("no relayed answer named %s after it stopped: the probes missed the window", gone)
	}
	// The relay lists the slices every second; a list takes milliseconds
	// here. 2 s leaves the test's own poll of the slices (a kubectl every
	// 100 ms) its lag.
	late := res.LastWith.Sub(res.Gone)
	if late > 2*time.Second {
		t.Errorf("a probe %s after the slices stopped calling %s ready was still answered with it", late.Round(time.Millisecond), gone)
	}
	if res.FirstWithout.IsZero() {
		t.Errorf("the last answer still named %s", gone)
	}
	t.Logf("MEASURED: %s stopped: not ready in the slices %s later; the last probe answered with it was sent %s after that (relay poll 1s; probes every 250ms, %d answered)",
		gone, res.Gone.Sub(res.Stopped).Round(100*time.Millisecond), late.Round(time.Millisecond), res.Answered)
}
