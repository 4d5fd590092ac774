package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// denied is Consul's message for a token lacking perm on name.
func denied(perm, name string) string {
	return fmt.Sprintf("Permission denied: token with AccessorID '2c858bd0-9bd4-89ca-2b69-5c24825462fd' lacks permission '%s' on %q", perm, name)
}

func TestACLErrorRule(t *testing.T) {
	log, _ := newTestLogger()
	c := newCatalog(Config{Mode: ModeCatalog, SharedConfig: SharedConfig{BridgeID: "a1"}}.withDefaults(), log, nil, nil, nil)
	tests := []struct {
		name    string
		msg     string
		rules   rulePrefixes
		rule    string
		unknown bool
		notACL  bool
	}{
		{"service", denied("service:write", "django"), c.catalogRules, `service "django" { policy = "write" }`, false, false},
		{"check without service name", denied("service:write", ""), c.catalogRules, `service "" { policy = "write" }`, false, false},
		{"server node", denied("node:write", "django-10.0.0.1-8000"), c.catalogRules, `node_prefix "django-" { policy = "write" }`, false, false},
		{"fleet node", denied("node:write", "udp-discovery-bridge-django"), c.catalogRules, `node_prefix "udp-discovery-bridge-" { policy = "write" }`, false, false},
		{"session", denied("session:write", "udp-discovery-bridge-django"), c.catalogRules, `session_prefix "udp-discovery-bridge-" { policy = "write" }`, false, false},
		{"key", denied("key:write", "udp-discovery-bridge/django/obs/a1/0"), c.catalogRules, `key_prefix "udp-discovery-bridge/django/" { policy = "write" }`, false, false},
		{"foreign key", denied("key:read", "other/x"), c.catalogRules, `key "other/x" { policy = "read" }`, false, false},
		{"agent service", "Unexpected response code: 403 (" + denied("service:write", "udp-discovery-bridge") + ")", exactRule, `service "udp-discovery-bridge" { policy = "write" }`, false, false},
		{"unknown token", "Unexpected response code: 403 (ACL not found)", exactRule, "", true, false},
		{"bare 403", "Unexpected response code: 403 (Permission denied)", exactRule, "", false, false},
		{"not an ACL error", "dial tcp 10.0.0.1:8500: connect: connection refused", exactRule, "", false, true},
		{"rate limit", "Unexpected response code: 429 (rate limit exceeded)", exactRule, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := aclError("op", errors.New(tt.msg), tt.rules)
			var ae *ACLError
			if !errors.As(err, &ae) {
				if !tt.notACL {
					t.Fatalf("aclError(%q) = %v, want an *ACLError", tt.msg, err)
				}
				return
			}
			if tt.notACL {
				t.Fatalf("aclError(%q) = %v, want the error unchanged", tt.msg, err)
			}
			if ae.Rule != tt.rule || ae.Unknown != tt.unknown {
				t.Errorf("rule %q unknown %v, want %q %v", ae.Rule, ae.Unknown, tt.rule, tt.unknown)
			}
			if tt.rule != "" && !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("message %q does not name the rule", err)
			}
		})
	}
}

// FuzzACLErrorText: any message gives an error; a rule, when found, is one
// line of HCL naming a policy.
func FuzzACLErrorText(f *testing.F) {
	f.Add(denied("service:write", "django"))
	f.Add(denied("key:write", "a\"b"))
	f.Add("ACL not found")
	f.Fuzz(func(t *testing.T, msg string) {
		err := aclErrorText("op", msg, errors.New(msg), exactRule)
		if err == nil {
			t.Fatal("nil error")
		}
		var ae *ACLError
		if errors.As(err, &ae) && ae.Rule != "" && (strings.Contains(ae.Rule, "\n") || !strings.Contains(ae.Rule, "{ policy = ")) {
			t.Errorf("rule %q", ae.Rule)
		}
	})
}

// TestCatalogSessionRefusedByACL: a session Consul refuses is the error of
// every Apply, naming the missing rule (not "Consul unreachable?").
func TestCatalogSessionRefusedByACL(t *testing.T) {
	h := newCatHarness(t)
	a := h.bridge("a")
	refusal := errors.New("Unexpected response code: 403 (" + denied("session:write", "udp-discovery-bridge-django") + ")")
	h.fc.FailNext("CreateSession", 1000, refusal)
	h.start(a)
	_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	var ae *ACLError
	if !errors.As(err, &ae) || ae.Rule != `session_prefix "udp-discovery-bridge-" { policy = "write" }` {
		t.Fatalf("Apply = %v, want the session's ACL refusal with its rule", err)
	}
	if errors.Is(err, errNoSession) {
		t.Errorf("Apply = %v: guesses instead of naming the cause", err)
	}
	if n := len(a.logs.Grep("missing_acl_rule")); n != 1 {
		t.Errorf("%d log lines name the missing rule, want 1:\n%s", n, strings.Join(a.logs.Lines(), "\n"))
	}
}

// TestCatalogLeaderRefusedByACL: a catalog write the leader's token may not
// make is the error of Apply (a sink error, /readyz fails) until the policy
// is fixed; it is logged once, naming the rule.
func TestCatalogLeaderRefusedByACL(t *testing.T) {
	h := newCatHarness(t)
	h.fc.Deny(func(op *api.TxnOp) error {
		if op.Node != nil && strings.HasPrefix(op.Node.Node.Node, "django-") {
			return errors.New(denied("node:write", op.Node.Node.Node))
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
	if !isACL(err) || !strings.Contains(err.Error(), rule) {
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
}

// TestAgentLockRefusedByACL: a standby whose token may not take the lock
// (no session rule) fails Apply naming the rule, so /readyz says so; once
// the lock is taken Apply succeeds.
func TestAgentLockRefusedByACL(t *testing.T) {
	h := newHarness(t, withLock())
	h.lk.FailLocks(errors.New("failed to create session: Unexpected response code: 403 (" + denied("session:write", "node-1") + ")"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait for the lock
	if err := h.sink.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.clk.WaitForTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	_, err := h.sink.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	if !isACL(err) || !strings.Contains(err.Error(), `session "node-1" { policy = "write" }`) {
		t.Fatalf("Apply = %v, want the lock's ACL refusal naming the session rule", err)
	}
	h.clk.Advance(lockRetryMin)
	<-h.lk.waiting
	h.lk.grant <- struct{}{}
	waitFor(t, "leadership", h.sink.Leader)
	h.apply(snap(2, "10.0.0.1:8000"))
}

// TestCatalogSessionTLSCause: a session that cannot be created for TLS
// makes Apply say so (x509), not guess "Consul unreachable?".
func TestCatalogSessionTLSCause(t *testing.T) {
	h := newCatHarness(t)
	a := h.bridge("a")
	h.fc.FailNext("CreateSession", 1000, errors.New(`Put "https://10.0.0.1:8501/v1/session/create": tls: failed to verify certificate: x509: certificate signed by unknown authority`))
	h.start(a)
	_, err := a.c.Apply(context.Background(), snap(1, "10.0.0.1:8000"))
	if err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") || strings.Contains(err.Error(), "unreachable?") {
		t.Fatalf("Apply = %v, want the TLS cause", err)
	}
}
