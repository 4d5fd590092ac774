package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// TestCatalogACLRules: the rule a refusal names is in the prefix form of
// what a fleet writes: a node per server (node_prefix "<service>-"), its
// own node and sessions (node_prefix and session_prefix
// "udp-discovery-bridge-"), its keys (key_prefix "<consul_kv_prefix>/").
func TestCatalogACLRules(t *testing.T) {
	log, _ := consultest.NewLogger()
	c := newCatalog(Config{SharedConfig: consulclient.SharedConfig{BridgeID: "a1"}}.WithDefaults(), log, nil, nil, nil)
	tests := []struct {
		name string
		msg  string
		rule string
	}{
		{"service", consultest.Denied("service:write", "django"), `service "django" { policy = "write" }`},
		{"check without service name", consultest.Denied("service:write", ""), `service "" { policy = "write" }`},
		{"server node", consultest.Denied("node:write", "django-10.0.0.1-8000"), `node_prefix "django-" { policy = "write" }`},
		{"fleet node", consultest.Denied("node:write", "udp-discovery-bridge-django"), `node_prefix "udp-discovery-bridge-" { policy = "write" }`},
		{"session", consultest.Denied("session:write", "udp-discovery-bridge-django"), `session_prefix "udp-discovery-bridge-" { policy = "write" }`},
		{"key", consultest.Denied("key:write", "udp-discovery-bridge/django/obs/a1/0"), `key_prefix "udp-discovery-bridge/django/" { policy = "write" }`},
		{"foreign key", consultest.Denied("key:read", "other/x"), `key "other/x" { policy = "read" }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := consulclient.OpError("op", errors.New(tt.msg), c.catalogRules)
			var ae *consulclient.ACLError
			if !errors.As(err, &ae) || ae.Rule != tt.rule || !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("OpError(%q) = %v, want an *ACLError naming %s", tt.msg, err, tt.rule)
			}
		})
	}
}

// TestCatalogSessionRefusedByACL: a session Consul refuses is the error of
// every Apply, naming the missing rule (not "Consul unreachable?").
func TestCatalogSessionRefusedByACL(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		refusal := errors.New("Unexpected response code: 403 (" + consultest.Denied("session:write", "udp-discovery-bridge-django") + ")")
		h.fc.FailNext("CreateSession", 1000, refusal)
		h.start(a)
		_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
		var ae *consulclient.ACLError
		if !errors.As(err, &ae) || ae.Rule != `session_prefix "udp-discovery-bridge-" { policy = "write" }` {
			t.Fatalf("Apply = %v, want the session's ACL refusal with its rule", err)
		}
		if errors.Is(err, errNoSession) {
			t.Errorf("Apply = %v: guesses instead of naming the cause", err)
		}
		if n := len(a.logs.Grep("missing_acl_rule")); n != 1 {
			t.Errorf("%d log lines name the missing rule, want 1:\n%s", n, strings.Join(a.logs.Lines(), "\n"))
		}
	})
}

// TestCatalogLeaderRefusedByACL: a catalog write the leader's token may not
// make is the error of Apply (a sink error, /readyz fails) until the policy
// is fixed; it is logged once, naming the rule.
func TestCatalogLeaderRefusedByACL(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		h.fc.Deny(func(op *api.TxnOp) error {
			if op.Node != nil && strings.HasPrefix(op.Node.Node.Node, "django-") {
				return errors.New(consultest.Denied("node:write", op.Node.Node.Node))
			}
			return nil
		})
		a := h.bridge("a", func(c *Config) { c.Catalog.StartupGrace = 0 })
		h.start(a)
		h.pump("a leads", 50*time.Millisecond, a.c.Leader)
		const rule = `node_prefix "django-" { policy = "write" }`
		var err error
		h.pump("Apply fails with the leader's refusal", 100*time.Millisecond, func() bool {
			_, err = a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
			return err != nil
		})
		if !consulclient.IsACL(err) || !strings.Contains(err.Error(), rule) {
			t.Fatalf("Apply = %v, want the leader's ACL refusal naming %s", err, rule)
		}
		h.pump("more write attempts", 2*time.Second, func() bool { return len(a.logs.Grep("catalog reconciled")) >= 3 })
		if n := len(a.logs.Grep("refused a catalog operation for its ACLs")); n != 1 {
			t.Errorf("%d ACL error lines, want 1 (logged once):\n%s", n, strings.Join(a.logs.Lines(), "\n"))
		}
		h.fc.Deny(nil)
		h.pump("registered once the policy is fixed", 500*time.Millisecond, func() bool { return h.observed("10.0.0.1:8000", api.HealthPassing, "1") })
		h.pump("Apply succeeds again", 100*time.Millisecond, func() bool {
			_, err = a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
			return err == nil
		})
	})
}

// TestCatalogSessionTLSCause: a session that cannot be created for TLS
// makes Apply say so (x509), not guess "Consul unreachable?".
func TestCatalogSessionTLSCause(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newCatHarness(t)
		a := h.bridge("a")
		h.fc.FailNext("CreateSession", 1000, errors.New(`Put "https://10.0.0.1:8501/v1/session/create": tls: failed to verify certificate: x509: certificate signed by unknown authority`))
		h.start(a)
		_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
		if err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") || strings.Contains(err.Error(), "unreachable?") {
			t.Fatalf("Apply = %v, want the TLS cause", err)
		}
	})
}
