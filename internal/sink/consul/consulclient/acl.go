package consulclient

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rs/zerolog"
)

// ACLError is a request Consul refused for its ACLs: the token lacks a
// rule (Rule, in policy HCL, when Consul named the permission), or Consul
// does not know the token at all ("ACL not found": revoked, expired, wrong).
type ACLError struct {
	// Op is what was refused, e.g. "create session on node
	// udp-discovery-bridge-django".
	Op string
	// Rule is the missing rule as policy HCL, e.g.
	// `service "django" { policy = "write" }`; empty when Consul did not
	// name the permission or the token is unknown.
	Rule string
	// Unknown is true when Consul does not know the token (ACL not found).
	Unknown bool
	// Err is Consul's answer.
	Err error
}

func (e *ACLError) Error() string {
	switch {
	case e.Unknown:
		return fmt.Sprintf("consul ACL: %s refused: Consul does not know the token (ACL not found: revoked, expired or wrong consul_token/consul_token_file?): %v", e.Op, e.Err)
	case e.Rule != "":
		return fmt.Sprintf("consul ACL: %s refused: the token's policy lacks `%s`: %v", e.Op, e.Rule, e.Err)
	default:
		return fmt.Sprintf("consul ACL: %s refused (permission denied): %v", e.Op, e.Err)
	}
}

// Unwrap returns Consul's answer.
func (e *ACLError) Unwrap() error { return e.Err }

// deniedRE matches Consul's permission message: `lacks permission
// 'service:write' on "django"` (the name may be empty).
var deniedRE = regexp.MustCompile(`lacks permission '([a-z_]+):([a-z]+)' on "([^"]*)"`)

// RulePrefixes maps an ACL resource and name to the rule the bridge needs:
// the prefix form where the bridge writes many names (its nodes, keys,
// sessions). It returns the rule keyword and the name or prefix.
type RulePrefixes func(resource, name string) (keyword, value string)

// ExactRule is the RulePrefixes of a sink that needs only exact names.
func ExactRule(resource, name string) (string, string) { return resource, name }

// aclError returns err as an *ACLError when Consul's message says the
// request was refused for its ACLs (a 403, "Permission denied", "ACL not
// found"), else err unchanged. op says what was refused; prefixes turns the
// permission Consul names into the rule to add.
func aclError(op string, err error, prefixes RulePrefixes) error {
	if err == nil {
		return nil
	}
	var ae *ACLError
	if errors.As(err, &ae) {
		return err
	}
	return ACLErrorText(op, err.Error(), err, prefixes)
}

// ACLErrorText is aclError on a message (a txn operation's error): an
// *ACLError when msg says Consul refused op for its ACLs, else err.
func ACLErrorText(op, msg string, err error, prefixes RulePrefixes) error {
	switch {
	case strings.Contains(msg, "ACL not found"):
		return &ACLError{Op: op, Unknown: true, Err: err}
	case strings.Contains(msg, "Permission denied"), strings.Contains(msg, "Unexpected response code: 403"):
		ae := &ACLError{Op: op, Err: err}
		if m := deniedRE.FindStringSubmatch(msg); m != nil {
			ae.Rule = ruleHCL(m[1], m[2], m[3], prefixes)
		}
		return ae
	}
	return err
}

// ruleHCL is the policy rule granting access on resource name, in the
// prefix form prefixes gives.
func ruleHCL(resource, access, name string, prefixes RulePrefixes) string {
	if prefixes == nil {
		prefixes = ExactRule
	}
	kw, v := prefixes(resource, name)
	return fmt.Sprintf("%s %q { policy = %q }", kw, v, access)
}

// IsACL reports whether err is (or wraps) an *ACLError.
func IsACL(err error) bool {
	var ae *ACLError
	return errors.As(err, &ae)
}

// OpError wraps err of Consul operation op: the *ACLError when Consul
// refused it for its ACLs, else "consul <op>: <err>".
func OpError(op string, err error, prefixes RulePrefixes) error {
	if e := aclError(op, err, prefixes); IsACL(e) {
		return e
	}
	return fmt.Errorf("consul %s: %w", op, err)
}

// WithRule adds the missing ACL rule of err, if any, to a log event.
func WithRule(ev *zerolog.Event, err error) *zerolog.Event {
	var ae *ACLError
	if errors.As(err, &ae) && ae.Rule != "" {
		ev = ev.Str("missing_acl_rule", ae.Rule)
	}
	return ev
}
