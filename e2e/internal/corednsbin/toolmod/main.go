// Command toolmod is CoreDNS with only the plugins the end-to-end tests use
// (errors, log, kubernetes): the stock build's plugin set would pull in every
// cloud provider's SDK.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func init() {
	dnsserver.Directives = []string{"errors", "log", "kubernetes"}
}

func main() { coremain.Run() }
