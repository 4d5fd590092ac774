// Command toolmod is CoreDNS with only the plugins the end-to-end tests use
// (errors, log, hosts, kubernetes; corednsbin.Plugins lists them): the stock
// build's plugin set would pull in every cloud provider's SDK.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

// init sets the plugin chain's order: stock CoreDNS's (plugin.cfg) for these
// plugins, so hosts answers before kubernetes in a block that has both.
func init() {
	dnsserver.Directives = []string{"errors", "log", "hosts", "kubernetes"}
}

func main() { coremain.Run() }
