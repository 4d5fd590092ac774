package harness

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// Server is one element of `bridge discover --json`.
type Server struct {
	IP            string `json:"ip"`
	Port          int    `json:"port"`
	SourceAddress string `json:"source_address"`
	Interface     string `json:"interface"`
	RawResponse   string `json:"raw_response"`
	PayloadIP     string `json:"payload_ip"`
	AddressFrom   string `json:"address_from"`
}

// requiredFields must be present in every --json element.
var requiredFields = []string{"ip", "port", "source_address", "interface", "raw_response", "payload_ip", "address_from"}

// DiscoverJSON runs `bridge discover --json args...` on h, checks that the
// exit status is wantExit and that stdout is a JSON array whose elements all
// carry the documented fields, and returns the servers keyed "ip:port".
func DiscoverJSON(t testing.TB, h *netns.Host, env []string, wantExit int, args ...string) (map[string]Server, netns.Result) {
	t.Helper()
	r := Bridge(t, h, env, append([]string{"discover", "--json"}, args...)...)
	if r.ExitCode != wantExit {
		t.Fatalf("bridge discover --json %s: exit %d, want %d (%v)\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), r.ExitCode, wantExit, r.Err, r.Stdout, r.Stderr)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &raw); err != nil {
		t.Fatalf("bridge discover --json %s: stdout is not a JSON array: %v\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), err, r.Stdout, r.Stderr)
	}
	for i, obj := range raw {
		for _, f := range requiredFields {
			if _, ok := obj[f]; !ok {
				t.Errorf("element %d of --json output lacks %q: %v", i, f, obj)
			}
		}
	}
	var list []Server
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		t.Fatalf("decode --json output: %v\n%s", err, r.Stdout)
	}
	got := map[string]Server{}
	for _, s := range list {
		k := Endpoint(s.IP, s.Port)
		if _, dup := got[k]; dup {
			t.Errorf("--json output lists %s twice: %s", k, r.Stdout)
		}
		got[k] = s
	}
	return got, r
}

// Endpoint is the "ip:port" key of a server.
func Endpoint(ip string, port int) string { return ip + ":" + strconv.Itoa(port) }

// WantServers fails the test unless got holds exactly the endpoints want.
func WantServers(t testing.TB, got map[string]Server, r netns.Result, want ...string) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(got))
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("servers found = %v, want %v\nstdout: %s\nstderr: %s", keys, want, r.Stdout, r.Stderr)
	}
}
