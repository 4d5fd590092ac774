package main

// The container image is FROM scratch: no /etc/ssl/certs. The fallback
// bundle (Mozilla's roots, via golang.org/x/crypto) is used only when the
// system has no roots, so `--consul-ssl` against a publicly signed Consul
// works in the image, and a host's own store (or --consul-cacert) still wins
// everywhere else.
import _ "golang.org/x/crypto/x509roots/fallback"
