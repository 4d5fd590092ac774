package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/bridgebin"
)

// aclPage is the documentation page that holds the ACL policies.
const aclPage = "docs/operations/acls.md"

// DocsPolicy returns the ```hcl block of aclPage that follows the line
// marker "**ACL policy, <mode>**".
func DocsPolicy(t testing.TB, mode string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), aclPage))
	if err != nil {
		t.Fatal(err)
	}
	marker := "**ACL policy, " + mode + "**"
	i := strings.Index(string(b), marker)
	if i < 0 {
		t.Fatalf("%s has no %q", aclPage, marker)
	}
	rest := string(b[i:])
	const open = "```hcl\n"
	j := strings.Index(rest, open)
	if j < 0 {
		t.Fatalf("%s: no ```hcl block after %q", aclPage, marker)
	}
	rest = rest[j+len(open):]
	k := strings.Index(rest, "```")
	if k < 0 {
		t.Fatalf("%s: the hcl block after %q is not closed", aclPage, marker)
	}
	return rest[:k]
}

// PolicyRules splits a policy into its rules, one per line, comments and
// blank lines dropped, spaces collapsed: `node_prefix "django-" { policy =
// "write" }`, as the bridge names a missing rule.
func PolicyRules(policy string) []string {
	var out []string
	for _, line := range strings.Split(policy, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// ChartDir is the Helm chart's directory.
func ChartDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "charts", "udp-discovery-bridge")
}

// RepoRoot is the bridge repository, the e2e module's parent, found from
// the test's package directory whatever its depth.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := bridgebin.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
