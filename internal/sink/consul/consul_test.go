package consul

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
)

func TestConsulServiceID(t *testing.T) {
	tests := []struct {
		name    string
		service string
		addr    string
		want    string
	}{
		{"ipv4", "django", "10.213.1.5:8000", "django-10.213.1.5-8000"},
		{"port 1", "django", "10.0.0.1:1", "django-10.0.0.1-1"},
		{"ipv6", "django", "[fe80::1]:8000", "django-fe80--1-8000"},
		{"ipv6 zone", "django", "[fe80::1%eth0]:8000", "django-fe80--1-eth0-8000"},
		{"odd service name", "my app/x", "10.0.0.1:80", "my-app-x-10.0.0.1-80"},
		{"unicode service name", "dj\u00e4ngo", "10.0.0.1:80", "dj--ngo-10.0.0.1-80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ServiceID(tt.service, netip.MustParseAddrPort(tt.addr))
			if got != tt.want {
				t.Errorf("ServiceID(%q, %s) = %q, want %q", tt.service, tt.addr, got, tt.want)
			}
		})
	}
}

func TestConsulBridgeServiceID(t *testing.T) {
	if got, want := BridgeServiceID("host-1.lab"), "udp-discovery-bridge-host-1.lab"; got != want {
		t.Errorf("BridgeServiceID = %q, want %q", got, want)
	}
	if got, want := BridgeServiceID("a b/c"), "udp-discovery-bridge-a-b-c"; got != want {
		t.Errorf("BridgeServiceID = %q, want %q", got, want)
	}
}

func TestConsulQuoteFilterString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"plain", "host-1", `"host-1"`, false},
		{"backslash", `a\b`, `"a\\b"`, false},
		{"double quote uses raw", `a"b`, "`a\"b`", false},
		{"backtick only", "a`b", "\"a`b\"", false},
		{"both quotes", "a\"`b", "", true},
		{"newline", "a\nb", "", true},
		{"carriage return", "a\rb", "", true},
		{"unicode", "h\u00f6st", "\"h\u00f6st\"", false},
		{"empty", "", `""`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := quoteFilterString(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("quoteFilterString(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("quoteFilterString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			// What Consul's grammar does with it: the literal ends at the
			// first closing quote of its kind, then strconv.Unquote.
			if strings.Count(got[1:len(got)-1], got[:1]) != 0 {
				t.Errorf("literal %s contains its own delimiter", got)
			}
			back, err := strconv.Unquote(got)
			if err != nil || back != tt.in {
				t.Errorf("strconv.Unquote(%s) = %q, %v; want %q", got, back, err, tt.in)
			}
		})
	}
}

// FuzzConsulQuoteFilterString checks that every accepted string round-trips
// through Consul's literal rule and never contains its own delimiter.
func FuzzConsulQuoteFilterString(f *testing.F) {
	for _, s := range []string{"host-1", `a\b`, `a"b`, "a`b", "a\"`b", "a\nb", "", "h\u00f6st"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := quoteFilterString(s)
		if err != nil {
			return
		}
		inner := got[1 : len(got)-1]
		if strings.Contains(inner, got[:1]) {
			t.Fatalf("literal %s contains its delimiter", got)
		}
		back, err := strconv.Unquote(got)
		if err != nil {
			t.Fatalf("Unquote(%s): %v", got, err)
		}
		if back != s && strings.ToValidUTF8(s, "\uFFFD") != back {
			t.Fatalf("round trip %q -> %s -> %q", s, got, back)
		}
	})
}

func TestConsulOwnedFilter(t *testing.T) {
	got, err := ownedFilter("host-1")
	if err != nil {
		t.Fatal(err)
	}
	want := `Meta["managed-by"] == "udp-discovery-bridge" and Meta["bridge-id"] == "host-1"`
	if got != want {
		t.Errorf("ownedFilter = %s\nwant          %s", got, want)
	}
	got, err = ownedFilter(`we"ird`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, "== `we\"ird`") {
		t.Errorf("ownedFilter with quote = %s", got)
	}
}

func validConsulConfig() Config {
	return Config{SharedConfig: SharedConfig{BridgeID: "host-1", Client: ClientConfig{Addr: "127.0.0.1:1"}}}.withDefaults()
}

func TestConsulConfigValidate(t *testing.T) {
	tests := []validateCase{
		{"defaults", func(*Config) {}, ""},
		{"deregister at floor", func(c *Config) { c.DeregisterAfter = time.Minute }, ""},
		{"deregister below floor", func(c *Config) { c.DeregisterAfter = 30 * time.Second }, "consul_deregister_after"},
		{"on exit keep", func(c *Config) { c.OnExit = "keep" }, ""},
		{"on exit bad", func(c *Config) { c.OnExit = "nuke" }, "on_exit"},
		{"check tcp", func(c *Config) { c.Check = "tcp" }, ""},
		{"check http", func(c *Config) { c.Check = "http" }, ""},
		{"check bad", func(c *Config) { c.Check = "grpc" }, "consul_check"},
		{"http path without slash", func(c *Config) { c.Check = "http"; c.HTTPPath = "health" }, "consul_http_path"},
		{"no bridge id", func(c *Config) { c.BridgeID = "" }, "bridge_id"},
		{"unquotable bridge id", func(c *Config) { c.BridgeID = "a\"`b" }, "bridge_id"},
		{"reserved service name", func(c *Config) { c.Service = BridgeServiceName }, "consul_service"},
		{"lock session ttl too short", func(c *Config) { c.Agent.LockKey = "k"; c.Agent.LockSessionTTL = 5 * time.Second }, "consul_lock_session_ttl"},
		{"short lock ttl ignored without lock", func(c *Config) { c.Agent.LockSessionTTL = 5 * time.Second }, ""},
		{"parallel too high", func(c *Config) { c.Agent.Parallel = 1000 }, "consul_parallel"},
		{"negative ttl", func(c *Config) { c.Agent.TTL = -time.Second }, "consul_ttl"},
		{"parallel at most", func(c *Config) { c.Agent.Parallel = 64 }, ""},
		{"catalog part ignored", func(c *Config) { c.Catalog.WriteRate = -1; c.Catalog.KVPrefix = "/x/" }, ""},
	}
	checkValidate(t, validConsulConfig, tests)
}

func TestConsulValidateReportsAllProblems(t *testing.T) {
	c := validConsulConfig()
	c.OnExit = "x"
	c.Check = "y"
	c.DeregisterAfter = time.Second
	err := c.Validate()
	for _, key := range []string{"on_exit", "consul_check", "consul_deregister_after"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
}

func TestNewConsulRejectsBadConfig(t *testing.T) {
	_, err := NewAgent(Config{SharedConfig: SharedConfig{BridgeID: "h", DeregisterAfter: 10 * time.Second}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "consul_deregister_after") {
		t.Fatalf("NewAgent = %v, want error naming consul_deregister_after", err)
	}
}

func TestConsulTokenFile(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       ClientConfig
		env       map[string]string
		wantToken string
		wantErr   string
	}{
		{"token file", ClientConfig{TokenFile: good}, nil, "s3cr3t-token", ""},
		{"token file wins over token", ClientConfig{TokenFile: good, Token: "other"}, nil, "s3cr3t-token", ""},
		{"token", ClientConfig{Token: "tok"}, nil, "tok", ""},
		{"env token file", ClientConfig{}, map[string]string{"CONSUL_HTTP_TOKEN_FILE": good, "CONSUL_HTTP_TOKEN": "envtok"}, "s3cr3t-token", ""},
		{"env token", ClientConfig{}, map[string]string{"CONSUL_HTTP_TOKEN": "envtok"}, "envtok", ""},
		{"option beats env", ClientConfig{Token: "tok"}, map[string]string{"CONSUL_HTTP_TOKEN_FILE": good}, "tok", ""},
		{"missing file", ClientConfig{TokenFile: filepath.Join(dir, "nope")}, nil, "", "consul_token_file"},
		{"empty file", ClientConfig{TokenFile: empty}, nil, "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ac, tok, _, err := tt.cfg.apiConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apiConfig() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("error leaks the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok != tt.wantToken || ac.Token != tt.wantToken || ac.TokenFile != "" {
				t.Errorf("token = %q (api %q, file %q), want %q", tok, ac.Token, ac.TokenFile, tt.wantToken)
			}
		})
	}
}

func TestConsulCheckMissing(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"404", api.StatusError{Code: 404, Body: `Unknown check ID "x"`}, true},
		{"no ttl", errors.New(`Unexpected response code: 500 (CheckID "x" does not have associated TTL)`), true},
		{"unknown check", errors.New(`Unexpected response code: 404 (Unknown check ID "x")`), true},
		{"does not exist", errors.New(`CheckID "x" does not exist`), true},
		{"acl", api.StatusError{Code: 403, Body: "ACL not found"}, false},
		{"unreachable", errors.New("dial tcp 127.0.0.1:8500: connect: connection refused"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkMissing(tt.err); got != tt.want {
				t.Errorf("checkMissing(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestConsulRedact(t *testing.T) {
	base := errors.New(`Put "http://127.0.0.1:8500/v1/agent/service/register?token=s3cr3t": dial tcp: refused`)
	r := redactor{secrets: func() []string { return []string{"s3cr3t"} }}
	got := r.err(base)
	if strings.Contains(got.Error(), "s3cr3t") {
		t.Errorf("redacted error still has the secret: %v", got)
	}
	if !strings.Contains(got.Error(), "[redacted]") {
		t.Errorf("redacted error = %v, want [redacted]", got)
	}
	if !errors.Is(got, base) {
		t.Errorf("redacted error does not unwrap to the original")
	}
	clean := errors.New("connection refused")
	if r.err(clean) != clean { //nolint:errorlint // the very same error value, unwrapped
		t.Errorf("an error without the secret must be returned unchanged")
	}
	if (redactor{}).err(base) != base { //nolint:errorlint // the very same error value, unwrapped
		t.Errorf("an empty secret must not redact")
	}
	if r.err(nil) != nil {
		t.Errorf("nil must stay nil")
	}
}

func TestConsulReconcile(t *testing.T) {
	rec := func(port int, iface string) service {
		return service{Name: "django", Address: "10.0.0.1", Port: port, Tags: []string{"a"},
			Meta: map[string]string{MetaManagedBy: ManagedByValue, MetaInterface: iface}}
	}
	desired := map[string]desiredEntry{
		"same":    {svc: rec(1, "eth0")},
		"changed": {svc: rec(2, "eth1")},
		"new":     {svc: rec(3, "eth0")},
	}
	known := map[string]service{
		"same":    rec(1, "eth0"),
		"changed": rec(2, "eth0"),
		"gone":    rec(4, "eth0"),
	}
	toReg, toDereg, unchanged := reconcile(desired, known)
	if strings.Join(toReg, ",") != "changed,new" || strings.Join(toDereg, ",") != "gone" || unchanged != 1 {
		t.Errorf("reconcile = %v, %v, %d; want [changed new], [gone], 1", toReg, toDereg, unchanged)
	}
	// A quiet round: nothing to write.
	toReg, toDereg, unchanged = reconcile(map[string]desiredEntry{"same": {svc: rec(1, "eth0")}}, map[string]service{"same": rec(1, "eth0")})
	if len(toReg)+len(toDereg) != 0 || unchanged != 1 {
		t.Errorf("quiet reconcile = %v, %v, %d", toReg, toDereg, unchanged)
	}
	// Not leader: everything known goes.
	_, toDereg, _ = reconcile(nil, known)
	if len(toDereg) != 3 {
		t.Errorf("reconcile(nil) deregisters %v, want all 3", toDereg)
	}
}

func TestConsulDesiredMeta(t *testing.T) {
	c, err := NewAgent(Config{SharedConfig: SharedConfig{BridgeID: "host-1", Client: ClientConfig{Addr: "127.0.0.1:1"}, Tags: []string{"lab"}, Check: "tcp", AppCheck: true}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	s := endpoint.Snapshot{Round: 1, Endpoints: []endpoint.Endpoint{{
		Addr: netip.MustParseAddrPort("10.213.1.5:8000"), Source: netip.MustParseAddrPort("10.213.1.5:9999"), Interface: "veth0",
	}, {
		Addr: netip.MustParseAddrPort("10.213.1.6:8000"), // no source, no interface
	}}}
	d := c.shape.desired(s)
	e, ok := d["django-10.213.1.5-8000"]
	if !ok {
		t.Fatalf("desired = %v, want django-10.213.1.5-8000", d)
	}
	want := map[string]string{
		"managed-by": "udp-discovery-bridge", "bridge-id": "host-1", "interface": "veth0",
		"source-address": "10.213.1.5:9999", "bridge-checks": "alias/1m0s+app",
	}
	for k, v := range want {
		if e.svc.Meta[k] != v {
			t.Errorf("meta[%s] = %q, want %q", k, e.svc.Meta[k], v)
		}
	}
	if e.svc.Address != "10.213.1.5" || e.svc.Port != 8000 || e.svc.Name != "django" || len(e.svc.Tags) != 1 {
		t.Errorf("service = %+v", e.svc)
	}
	e2 := d["django-10.213.1.6-8000"]
	if _, ok := e2.svc.Meta["interface"]; ok {
		t.Errorf("empty interface must be omitted from meta: %v", e2.svc.Meta)
	}
	if got := e.svc.endpoint(); got.Addr != s.Endpoints[0].Addr || got.Source != s.Endpoints[0].Source || got.Interface != "veth0" {
		t.Errorf("service.endpoint() = %+v", got)
	}
}

// TestConsulApplyUnreachable checks that an unreachable agent fails fast with
// an error that names the operation and never the token.
func TestConsulApplyUnreachable(t *testing.T) {
	c, err := NewAgent(Config{SharedConfig: SharedConfig{BridgeID: "host-1", Client: ClientConfig{Addr: "127.0.0.1:1", Token: "s3cr3t-token"}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Apply(ctx, endpoint.Snapshot{Round: 1})
	if err == nil {
		t.Fatal("Apply against a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "register bridge service") {
		t.Errorf("error %q does not name the operation", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the token: %v", err)
	}
}
