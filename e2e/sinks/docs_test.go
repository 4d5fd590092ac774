package sinks_test

import (
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
)

// TestDocsExamples reads the documentation's examples that other tests run
// as written (the ACL policies of docs/operations/acls.md, the scrape
// configs of docs/sinks/prometheus.md, the hosts file and its consumers'
// settings of docs/sinks/file.md), without the tools those tests need:
// a page that loses a marker or breaks a block fails here at once, with no
// root, Consul or Prometheus.
func TestDocsExamples(t *testing.T) {
	for _, mode := range []string{"agent mode", "agent mode with `--consul-lock`", "catalog mode"} {
		if rules := harness.PolicyRules(harness.DocsPolicy(t, mode)); len(rules) < 2 {
			t.Errorf("the %s policy has %d rules: %q", mode, len(rules), rules)
		}
	}
	for _, name := range []string{"http_sd", "file_sd", "consul_sd"} {
		if sc := docsScrapeConfig(t, name); sc["job_name"] == nil {
			t.Errorf("the %s scrape config has no job_name: %v", name, sc)
		}
	}
	if reload := corefileReload(t, docsHostsExample(t, "coredns")); reload <= 0 {
		t.Errorf("the hosts Corefile reloads every %s", reload)
	}
	if lines := docsHostsExample(t, "dnsmasq"); !strings.Contains(lines, "hostsdir="+docsHostsDir+"\n") {
		t.Errorf("the dnsmasq lines do not read %s:\n%s", docsHostsDir, lines)
	}
	if file := docsHostsExample(t, "file"); strings.Count(file, "\n") < 2 {
		t.Errorf("the hosts file example has no server line:\n%s", file)
	}
}
