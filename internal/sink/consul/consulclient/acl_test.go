package consulclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consultest"
)

// TestACLErrorRule: a refusal for the ACLs is an *ACLError naming the
// rule to add, in the prefix form the rules give; anything else is left
// as it is. Catalog mode's prefixes: catalog.TestCatalogACLRules.
func TestACLErrorRule(t *testing.T) {
	nodePrefix := func(resource, name string) (string, string) {
		if resource == "node" && strings.HasPrefix(name, "django-") {
			return "node_prefix", "django-"
		}
		return resource, name
	}
	tests := []struct {
		name    string
		msg     string
		rules   RulePrefixes
		rule    string
		unknown bool
		notACL  bool
	}{
		{"service", consultest.Denied("service:write", "django"), ExactRule, `service "django" { policy = "write" }`, false, false},
		{"check without service name", consultest.Denied("service:write", ""), ExactRule, `service "" { policy = "write" }`, false, false},
		{"prefix", consultest.Denied("node:write", "django-10.0.0.1-8000"), nodePrefix, `node_prefix "django-" { policy = "write" }`, false, false},
		{"no rules", consultest.Denied("key:read", "other/x"), nil, `key "other/x" { policy = "read" }`, false, false},
		{"agent service", "Unexpected response code: 403 (" + consultest.Denied("service:write", "udp-discovery-bridge") + ")", ExactRule, `service "udp-discovery-bridge" { policy = "write" }`, false, false},
		{"unknown token", "Unexpected response code: 403 (ACL not found)", ExactRule, "", true, false},
		{"bare 403", "Unexpected response code: 403 (Permission denied)", ExactRule, "", false, false},
		{"not an ACL error", "dial tcp 10.0.0.1:8500: connect: connection refused", ExactRule, "", false, true},
		{"rate limit", "Unexpected response code: 429 (rate limit exceeded)", ExactRule, "", false, true},
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
	f.Add(consultest.Denied("service:write", "django"))
	f.Add(consultest.Denied("key:write", "a\"b"))
	f.Add("ACL not found")
	f.Fuzz(func(t *testing.T, msg string) {
		err := ACLErrorText("op", msg, errors.New(msg), ExactRule)
		if err == nil {
			t.Fatal("nil error")
		}
		var ae *ACLError
		if errors.As(err, &ae) && ae.Rule != "" && (strings.Contains(ae.Rule, "\n") || !strings.Contains(ae.Rule, "{ policy = ")) {
			t.Errorf("rule %q", ae.Rule)
		}
	})
}
