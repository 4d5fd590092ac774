#!/usr/bin/env bash
# The whole test suite: vet, golangci-lint, unit tests with the race detector, brief fuzzing
# of every fuzz target, the documentation site (mkdocs build --strict and a check of every
# link: scripts/docs.sh, which installs the Debian packages mkdocs and mkdocs-material as
# root when missing), and the end-to-end tests (network namespaces, a real
# Consul, Helm, CoreDNS, external-dns and Prometheus built from their Go
# modules, the real bridge binary).
#
# The end-to-end tests need root (network namespaces), iproute2 and iptables,
# for the Kubernetes lab (e2e/internal/k8slab) containerd and runc, and for
# the DNS tests bind9 (named), dnsutils (dig, nsupdate) and dnsmasq
# (dnsmasq-base); as root this script installs the missing ones with apt-get. The image and
# compose tests need Docker and docker-compose (installed when Docker is
# present and it is missing).
# Environment: FUZZTIME (default 3s), E2E=0 to skip the end-to-end tests
# (only for quick local runs: CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

if [ "${E2E:-1}" != 0 ]; then
  need=()
  command -v ip >/dev/null || need+=(iproute2)
  command -v ss >/dev/null || need+=(iproute2)
  command -v iptables >/dev/null || need+=(iptables)
  # e2e/sinks' TestHostsFileDNS asks CoreDNS and dnsmasq with dig.
  command -v dig >/dev/null || need+=(dnsutils)
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
  if command -v docker >/dev/null && ! command -v docker-compose >/dev/null; then
    need+=(docker-compose)
  fi
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
  # BIND: the DNS server external-dns publishes DNSEndpoints to
  # (e2e/internal/bindns), asked with dig too.
  command -v named >/dev/null || [ -x /usr/sbin/named ] || need+=(bind9)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "test.sh: the end-to-end tests need root and: ${need[*]}" >&2
      exit 1
    fi
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

step() { printf '\n== %s\n' "$*"; }

step "go vet"
go vet ./...
(cd e2e && go vet ./...)

step "golangci-lint (built from its Go module once, then cached)"
scripts/lint.sh

step "unit tests (race)"
go test -race -count=1 ./...

step "fuzzing (${FUZZTIME:-3s} per target)"
FUZZTIME=${FUZZTIME:-3s} scripts/fuzz.sh

step "docs (mkdocs build --strict, every link and anchor)"
DOCS_OPTIONAL=1 scripts/docs.sh

if [ "${E2E:-1}" != 0 ]; then
  step "consul binary (built from its Go module once, then cached)"
  (cd e2e && go test -count=1 -timeout 20m -run '^TestConsulBinary$' -v ./internal/consulbin/ | grep -v '^=== ')
  step "helm binary (built from its Go module once, then cached)"
  (cd e2e && go test -count=1 -timeout 20m -run '^TestHelmBinary$' -v ./internal/helmbin/ | grep -v '^=== ')
  step "coredns binary (built from its Go module once, then cached)"
  (cd e2e && go test -count=1 -timeout 20m -run '^TestCoreDNSBinary$' -v ./internal/corednsbin/ | grep -v '^=== ')
  step "external-dns binary (built from its Go module once, then cached)"
  (cd e2e && go test -count=1 -timeout 30m -run '^TestExternalDNSBinary$' -v ./internal/externaldnsbin/ | grep -v '^=== ')
  step "kubernetes binaries (built from Go modules once, then cached)"
  (cd e2e && go test -count=1 -timeout 30m -run '^TestK8sBinaries$' -v ./internal/k8slab/ | grep -v '^=== ')
  step "prometheus and promtool binaries (built from Prometheus's Go module once, then cached)"
  (cd e2e && go test -count=1 -timeout 30m -run '^TestPromBinaries$' -v ./internal/prombin/ | grep -v '^=== ')
  step "end-to-end tests"
  # The Kubernetes lab runs on its own afterwards: its start-up load would
  # disturb the timing-sensitive tests of the other packages. The areas
  # (e2e/discover, e2e/consul, e2e/sinks, ...) run two packages at a time
  # (-p 2), each its tests GOMAXPROCS at a time: e2e/consul alone takes
  # about 9 minutes, the others together about 6, side by side.
  (cd e2e && go test -p 2 -count=1 -timeout 30m -skip '^TestK8s' $(go list ./... | grep -v '/internal/k8slab$'))
  step "kubernetes lab, and the Helm chart installed in it"
  (cd e2e && go test -p 1 -count=1 -timeout 20m -run '^TestK8s' -v ./internal/k8slab/ ./k8s/ ./robustness/ | grep -v '^=== ')
fi
