package promsd_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
)

func ep(addr, iface, network string) endpoint.Endpoint {
	e := endpoint.Endpoint{Addr: netip.MustParseAddrPort(addr), Interface: iface,
		FirstSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LastSeen: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)}
	if network != "" {
		e.Network = netip.MustParsePrefix(network)
	}
	return e
}

// checked returns e with the app check's verdict h.
func checked(e endpoint.Endpoint, h endpoint.Health) endpoint.Endpoint {
	e.Check = endpoint.Check{State: h, Output: "HTTP GET /healthz: " + h.String(), Since: e.FirstSeen}
	return e
}

func TestGroups(t *testing.T) {
	healthSet := []endpoint.Endpoint{
		checked(ep("10.0.0.4:8000", "eth0", "10.0.0.0/24"), endpoint.Failing),
		checked(ep("10.0.0.2:8000", "eth0", "10.0.0.0/24"), endpoint.Ready),
		checked(ep("10.0.0.3:8000", "eth0", "10.0.0.0/24"), endpoint.Pending),
		checked(ep("10.0.0.5:8000", "eth0", "10.0.0.0/24"), endpoint.Ready),
	}
	for _, tc := range []struct {
		name string
		id   promsd.Identity
		sel  promsd.Selection
		eps  []endpoint.Endpoint
		want string
	}{
		{"no servers", promsd.Identity{BridgeID: "node-1"}, promsd.Ready, nil, `[]`},
		{"one group per interface and network, targets in address order",
			promsd.Identity{BridgeID: "node-1"}, promsd.Ready,
			[]endpoint.Endpoint{
				ep("10.1.0.9:8000", "eth1", "10.1.0.0/24"),
				ep("10.0.0.2:8000", "eth0", "10.0.0.0/24"),
				ep("10.0.0.10:8443", "eth0", "10.0.0.0/24"),
				ep("10.1.0.3:8000", "eth1", "10.1.0.0/24"),
			},
			`[{"targets":["10.0.0.2:8000","10.0.0.10:8443"],"labels":{"__meta_udb_bridge_id":"node-1","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}},` +
				`{"targets":["10.1.0.3:8000","10.1.0.9:8000"],"labels":{"__meta_udb_bridge_id":"node-1","__meta_udb_interface":"eth1","__meta_udb_segment":"10.1.0.0/24"}}]`},
		{"a configured segment names every server's segment",
			promsd.Identity{BridgeID: "b", Segment: "hall-3"}, promsd.Ready,
			[]endpoint.Endpoint{ep("10.0.0.2:8000", "eth0", "10.0.0.0/24"), ep("10.1.0.3:8000", "eth0", "10.1.0.0/24")},
			`[{"targets":["10.0.0.2:8000","10.1.0.3:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_interface":"eth0","__meta_udb_segment":"hall-3"}}]`},
		{"unknown interface and network: labels left out, never empty",
			promsd.Identity{BridgeID: "b"}, promsd.Ready,
			[]endpoint.Endpoint{ep("10.0.0.2:8000", "", "")},
			`[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"b"}}]`},
		{"host bits of the network are masked; mapped addresses unmapped; port 0 skipped",
			promsd.Identity{BridgeID: "b"}, promsd.Ready,
			[]endpoint.Endpoint{ep("[::ffff:10.0.0.2]:8000", "eth0", "10.0.0.7/24"), ep("10.0.0.3:0", "eth0", "10.0.0.0/24")},
			`[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}}]`},
		{"ready only by default: pending and failing servers are left out",
			promsd.Identity{BridgeID: "b"}, promsd.Ready, healthSet,
			`[{"targets":["10.0.0.2:8000","10.0.0.5:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}}]`},
		{"no server ready: an empty list",
			promsd.Identity{BridgeID: "b"}, promsd.Ready, healthSet[:1], `[]`},
		{"all: every server, one group per health, labelled",
			promsd.Identity{BridgeID: "b"}, promsd.All, healthSet,
			`[{"targets":["10.0.0.4:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_health":"failing","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}},` +
				`{"targets":["10.0.0.3:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_health":"pending","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}},` +
				`{"targets":["10.0.0.2:8000","10.0.0.5:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_health":"ready","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}}]`},
		{"all without an app check: every server ready",
			promsd.Identity{BridgeID: "b"}, promsd.All, []endpoint.Endpoint{ep("10.0.0.2:8000", "eth0", "")},
			`[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"b","__meta_udb_health":"ready","__meta_udb_interface":"eth0"}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := promsd.Marshal(promsd.Groups(tc.id, tc.sel, tc.eps))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
			// Deterministic: the same set in another order is the same bytes.
			rev := append([]endpoint.Endpoint(nil), tc.eps...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if b2, _ := promsd.Marshal(promsd.Groups(tc.id, tc.sel, rev)); string(b2) != string(b) {
				t.Errorf("reversed input gives %s", b2)
			}
		})
	}
}

func serve(t *testing.T, h http.Handler, header string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, promsd.Path, nil)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

// TestHandlerStates walks the endpoint through a bridge's life: 503 before
// the first complete round, the list after it, [] with no servers, 503
// while rounds fail (early adds change the list but not the state), the
// list again once a round completes.
func TestHandlerStates(t *testing.T) {
	tg := promsd.NewTargets(promsd.Identity{BridgeID: "n1"}, promsd.Ready)
	h := tg.Handler(nil, zerolog.Nop())
	one := endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{ep("10.0.0.2:8000", "eth0", "10.0.0.0/24")}}
	two := endpoint.Snapshot{Round: 3, Endpoints: append(one.Endpoints, ep("10.0.0.3:8000", "eth0", "10.0.0.0/24"))}
	listOne := `[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}}]` + "\n"
	listTwo := `[{"targets":["10.0.0.2:8000","10.0.0.3:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_interface":"eth0","__meta_udb_segment":"10.0.0.0/24"}}]` + "\n"

	steps := []struct {
		name     string
		do       func()
		code     int
		body     string // exact for 200, a substring for 503
		jsonType bool
	}{
		{"before any round", func() {}, 503, "no discovery round completed yet", false},
		{"first round failed", func() { tg.Failed(errors.New("round 1: no interfaces")) }, 503, "round 1: no interfaces", false},
		{"a round completed with no servers", func() { tg.Round(endpoint.Snapshot{Round: 2}) }, 200, "[]\n", true},
		{"a round completed with one", func() { tg.Round(one) }, 200, listOne, true},
		{"a round failed", func() { tg.Failed(errors.New("round 4: no probe sent")) }, 503, "round 4: no probe sent", false},
		{"a server arrived while failing", func() { tg.Arrived(two) }, 503, "round 4: no probe sent", false},
		{"a round completed again", func() { tg.Round(two) }, 200, listTwo, true},
	}
	for _, s := range steps {
		s.do()
		code, body, hdr := serve(t, h, "")
		if code != s.code {
			t.Fatalf("%s: status %d %q, want %d", s.name, code, body, s.code)
		}
		if s.code == 200 && body != s.body || s.code != 200 && !strings.Contains(body, s.body) {
			t.Fatalf("%s: body %q, want %q", s.name, body, s.body)
		}
		if ct := hdr.Get("Content-Type"); s.jsonType != (ct == "application/json") {
			t.Fatalf("%s: Content-Type %q", s.name, ct)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, promsd.Path, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", rec.Code)
	}
}

func TestHandlerToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := promsd.NewTargets(promsd.Identity{BridgeID: "n1"}, promsd.Ready)
	tg.Round(endpoint.Snapshot{Round: 1})
	var logs strings.Builder
	for _, tc := range []struct {
		name  string
		token promsd.Token
		setup func()
		auth  string
		code  int
	}{
		{"static: no header", promsd.StaticToken("abc"), nil, "", 401},
		{"static: wrong token", promsd.StaticToken("abc"), nil, "Bearer abd", 401},
		{"static: basic scheme", promsd.StaticToken("abc"), nil, "Basic abc", 401},
		{"static: right token", promsd.StaticToken("abc"), nil, "Bearer abc", 200},
		{"file: right token, newline trimmed", promsd.TokenFile(file), nil, "Bearer s3cret-one", 200},
		{"file: rotated, the old token refused", promsd.TokenFile(file), func() {
			if err := os.WriteFile(file, []byte("s3cret-two"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "Bearer s3cret-one", 401},
		{"file: rotated, the new token taken", promsd.TokenFile(file), nil, "Bearer s3cret-two", 200},
		{"file: empty refuses everyone", promsd.TokenFile(file), func() {
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "Bearer ", 500},
		{"file: missing refuses everyone", promsd.TokenFile(filepath.Join(dir, "nope")), nil, "Bearer s3cret-two", 500},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		code, body, hdr := serve(t, tg.Handler(tc.token, zerolog.New(&logs)), tc.auth)
		if code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.code)
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, hdr.Get("WWW-Authenticate"))
		}
		if code == 200 && body != "[]\n" {
			t.Errorf("%s: body %q", tc.name, body)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the token was logged: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "bearer token unavailable") {
		t.Errorf("an unreadable token file was not logged: %s", logs.String())
	}
}

// TestTokenFailureLoggedOnTransitions: a token file that cannot be read is
// logged once when it starts failing and once when it is back, not at
// every refresh.
func TestTokenFailureLoggedOnTransitions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	tg := promsd.NewTargets(promsd.Identity{BridgeID: "n1"}, promsd.Ready)
	tg.Round(endpoint.Snapshot{Round: 1})
	var logs strings.Builder
	h := tg.Handler(promsd.TokenFile(file), zerolog.New(&logs))
	for range 3 {
		if code, _, _ := serve(t, h, "Bearer x"); code != http.StatusInternalServerError {
			t.Fatalf("missing token file: %d, want 500", code)
		}
	}
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if code, _, _ := serve(t, h, "Bearer x"); code != http.StatusOK {
			t.Fatalf("token file back: %d, want 200", code)
		}
	}
	if n := strings.Count(logs.String(), "bearer token unavailable"); n != 1 {
		t.Errorf("%d error lines for 3 failing requests, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "bearer token readable again"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs.String())
	}
}

// TestHandlerHealth: a health transition handed over between rounds
// (Arrived) changes the list at once; sd_targets all serves every server
// with its health label.
func TestHandlerHealth(t *testing.T) {
	a, b := ep("10.0.0.2:8000", "eth0", ""), ep("10.0.0.3:8000", "eth0", "")
	round := endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{checked(a, endpoint.Ready), checked(b, endpoint.Pending)}}
	flipped := endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{checked(a, endpoint.Failing), checked(b, endpoint.Ready)}}
	for _, tc := range []struct {
		sel           promsd.Selection
		before, after string
	}{
		{promsd.Ready,
			`[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_interface":"eth0"}}]` + "\n",
			`[{"targets":["10.0.0.3:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_interface":"eth0"}}]` + "\n"},
		{promsd.All,
			`[{"targets":["10.0.0.3:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_health":"pending","__meta_udb_interface":"eth0"}},` +
				`{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_health":"ready","__meta_udb_interface":"eth0"}}]` + "\n",
			`[{"targets":["10.0.0.2:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_health":"failing","__meta_udb_interface":"eth0"}},` +
				`{"targets":["10.0.0.3:8000"],"labels":{"__meta_udb_bridge_id":"n1","__meta_udb_health":"ready","__meta_udb_interface":"eth0"}}]` + "\n"},
	} {
		tg := promsd.NewTargets(promsd.Identity{BridgeID: "n1"}, tc.sel)
		h := tg.Handler(nil, zerolog.Nop())
		tg.Round(round)
		if code, body, _ := serve(t, h, ""); code != 200 || body != tc.before {
			t.Errorf("%s: after the round %d %s\nwant %s", tc.sel, code, body, tc.before)
		}
		tg.Arrived(flipped)
		if code, body, _ := serve(t, h, ""); code != 200 || body != tc.after {
			t.Errorf("%s: after the transition %d %s\nwant %s", tc.sel, code, body, tc.after)
		}
	}
}
