package consulclient

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Finding is the outcome of one operation `bridge doctor` tried.
type Finding struct {
	// Op says what the bridge needs to do, e.g. "write a server's node".
	Op string
	// OK is true when Consul allowed it.
	OK bool
	// Rule is the missing ACL rule (policy HCL) when Consul refused it for
	// one; empty otherwise.
	Rule string
	// Err is why it failed (nil when OK).
	Err error
}

// String is one line for `bridge doctor`.
func (f Finding) String() string {
	switch {
	case f.OK:
		return "ok      " + f.Op
	case f.Rule != "":
		return fmt.Sprintf("REFUSED %s: add to the token's policy: %s", f.Op, f.Rule)
	default:
		return fmt.Sprintf("FAILED  %s: %s", f.Op, strings.TrimSpace(f.Err.Error()))
	}
}

// Checkup tries Consul operations for `bridge doctor` and keeps a Finding
// of each. Its dry transactions end with an operation sure to fail (a
// check-index on a key that does not exist), so they roll back; Consul vets
// every operation's ACL before it applies any, so a missing rule shows as
// "Permission denied" on that operation.
type Checkup struct {
	// API is the client's.
	API *api.Client
	// Findings are the outcomes so far, in the order tried.
	Findings []Finding

	redact   func(error) error
	rules    RulePrefixes // names a missing ACL rule
	sentinel string
}

// NewCheckup returns a Checkup through client whose dry transactions end
// with a check-index on a key under prefix (the fleet's) that is never
// written.
func NewCheckup(client *Client, rules RulePrefixes, prefix string) *Checkup {
	return &Checkup{API: client.API, redact: client.Redact, rules: rules,
		sentinel: path.Join(prefix, "doctor", "never-written")}
}

// Add records the outcome of op.
func (d *Checkup) Add(op string, err error) {
	f := Finding{Op: op, OK: err == nil, Err: err}
	var ae *ACLError
	if errors.As(err, &ae) {
		f.Rule = ae.Rule
	}
	d.Findings = append(d.Findings, f)
}

// DryTxn sends ops followed by the sentinel and reports whether Consul's
// ACLs allowed ops: nil when the transaction failed only for other reasons
// (it always rolls back).
func (d *Checkup) DryTxn(ctx context.Context, op string, ops ...*api.TxnOp) error {
	sentinel := &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: d.sentinel, Index: 1}}
	all := append(append(api.TxnOps{}, ops...), sentinel)
	ok, resp, _, err := d.API.Txn().Txn(all, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return OpError(op, d.redact(err), d.rules)
	}
	if ok {
		return fmt.Errorf("consul %s: the transaction did not roll back", op) // cannot happen: the sentinel fails
	}
	for _, e := range resp.Errors {
		if e.OpIndex >= len(ops) {
			continue // the sentinel: refused or failed, either way the txn rolled back
		}
		if err := ACLErrorText(op, e.What, errors.New(e.What), d.rules); IsACL(err) {
			return err
		}
	}
	return nil
}

// Err is nil for a nil err, else err of op redacted and classified
// (OpError).
func (d *Checkup) Err(op string, err error) error {
	if err == nil {
		return nil
	}
	return OpError(op, d.redact(err), d.rules)
}
