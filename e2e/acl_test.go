package e2e_test

// ACL end-to-end tests: the README's least-privilege policies, taken
// verbatim from README.md, on default-deny Consul (a dev agent for agent
// mode, three servers for catalog mode), with the real bridge binary using a
// token of exactly that policy.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/pkg/sink/consul"
)

// aclManagement is the initial management token of the ACL clusters.
const aclManagement = "3f0e9c1b-7a52-4d6e-8b90-5c2a1d4e7f36"

// readmePolicy returns the ```hcl block of README.md that follows the line
// marker "**ACL policy, <mode>**".
func readmePolicy(t *testing.T, mode string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	marker := "**ACL policy, " + mode + "**"
	i := strings.Index(string(b), marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	rest := string(b[i:])
	const open = "```hcl\n"
	j := strings.Index(rest, open)
	if j < 0 {
		t.Fatalf("README.md: no ```hcl block after %q", marker)
	}
	rest = rest[j+len(open):]
	k := strings.Index(rest, "```")
	if k < 0 {
		t.Fatalf("README.md: the hcl block after %q is not closed", marker)
	}
	return rest[:k]
}

// aclToken creates a policy of rules and a token holding only it (with the
// management client c) and returns the token's secret.
func aclToken(t *testing.T, c *api.Client, name, rules string) string {
	t.Helper()
	pol, _, err := c.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		t.Fatalf("create policy %s:\n%s\n%v", name, rules, err)
	}
	tok, _, err := c.ACL().TokenCreate(&api.ACLToken{Description: name, Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatalf("create token of %s: %v", name, err)
	}
	return tok.SecretID
}

// writeTokenFile writes secret to a fresh file and returns its path.
func writeTokenFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestACLAgentPolicy: a bridge in agent mode with a token of exactly the
// README's agent-mode policy registers its servers, passing, on a
// default-deny agent.
func TestACLAgentPolicy(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := newRunLAN(t, 2, false)
	l.agent = consulagent.Start(t, consulagent.Options{Netns: l.client.NS, BindAddr: runClientIP, ACLToken: aclManagement})
	c := l.agent.Client()
	respond(t, l.servers[0], 1, "--ip", "10.213.1.11")
	respond(t, l.servers[1], 1, "--ip", "10.213.1.12")
	rules := readmePolicy(t, "agent mode")
	tok := aclToken(t, c, "bridge-agent", rules)
	b := startRun(t, l.client, "acl", consulRunArgs("acl", "--consul-token-file", writeTokenFile(t, tok),
		"--metrics-addr", runMetricsAddr, "--log-format", "json")...)
	ids := []string{runServerID(catService, "10.213.1.11", 8000), runServerID(catService, "10.213.1.12", 8000)}
	took := wantPassing(t, c, catService, 30*time.Second, ids...)
	t.Logf("MEASURED: agent mode with the README policy: 2 servers passing %s after start", took.Round(100*time.Millisecond))
	runWait(t, 10*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(l.client.NS)
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	if code := b.sigterm(t, 10*time.Second); code != 0 {
		t.Errorf("bridge exit %d after SIGTERM", code)
	}
	runWaitCatalog(t, c, catService, 10*time.Second)
	_, stderr := b.Output()
	if strings.Contains(stderr, tok) {
		t.Error("the bridge logged its token")
	}
}

// startACLCluster starts the three-server cluster with ACLs on
// (default_policy deny); l.consul holds the management token.
func (l *catLab) startACLCluster() *consulcluster.Cluster {
	l.t.Helper()
	cl := consulcluster.Start(l.t, l.lab, l.cons, consulcluster.Options{Subnet: "10.213.30.0/24", ACLManagementToken: aclManagement})
	l.consulAddrs = strings.Join(cl.HTTPAddrs(), ",")
	l.consul = cl.Client(0)
	return cl
}

// hasProbeCheck reports whether every entry of ids carries the consul-esm
// check.
func (l *catLab) hasProbeCheck(ids []string) (bool, string) {
	_, byID, _, err := catEntries(l.t, l.consul)
	if err != nil {
		return false, err.Error()
	}
	for _, id := range ids {
		e := byID[id]
		if e == nil {
			return false, id + " missing"
		}
		found := false
		for _, chk := range e.Checks {
			found = found || chk.CheckID == consul.ProbeCheckID
		}
		if !found {
			return false, id + " has no " + consul.ProbeCheckID
		}
	}
	return true, ""
}

// TestACLCatalogPolicy: on a three-server default-deny cluster, a bridge
// with a token of exactly the README's catalog-mode policy registers its
// servers, passing, first without and then with the consul-esm check.
func TestACLCatalogPolicy(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	l := newCatLab(t)
	l.startACLCluster()
	ids := l.servers("a", 2)
	rules := readmePolicy(t, "catalog mode")
	tok := aclToken(t, l.consul, "bridge-catalog", rules)
	tokFile := writeTokenFile(t, tok)

	b := l.bridge("a1", "--consul-token-file", tokFile)
	took := l.waitCatalog(40*time.Second, "servers passing with the README's catalog policy", all("passing", ids))
	t.Logf("MEASURED: catalog mode with the README policy: 2 servers passing %s after start", took.Round(100*time.Millisecond))
	runWait(t, 10*time.Second, "/readyz 200", func() (bool, string) {
		code, body := readyz(l.hosts["a1"].NS)
		return code == 200, fmt.Sprintf("%d %s", code, body)
	})
	b.sigterm(t, 10*time.Second)

	// The same policy with the consul-esm check: every entry is rewritten
	// with its external-node meta and the tcp check.
	b = l.bridge("a1", "--consul-token-file", tokFile, "--consul-check", "tcp")
	runWait(t, 40*time.Second, "servers with the consul-esm check", func() (bool, string) { return l.hasProbeCheck(ids) })
	l.waitCatalog(20*time.Second, "servers passing with --consul-check tcp", all("passing", ids))
	b.sigterm(t, 10*time.Second)
	_, stderr := b.Output()
	if strings.Contains(stderr, tok) {
		t.Error("the bridge logged its token")
	}
}
