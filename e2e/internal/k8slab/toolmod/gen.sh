#!/usr/bin/env bash
# Regenerates go.mod/go.sum of this wrapper module for the Kubernetes version
# given (default the one in ../k8slab.go): requires k8s.io/kubernetes and
# replaces each of its ./staging/src/k8s.io/<name> modules with the published
# k8s.io/<name> at the matching v0.<minor>.<patch>, read from the downloaded
# go.mod of k8s.io/kubernetes.
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOWORK=off
ver=${1:-v1.34.4}
staging=v0.${ver#v1.}
mod=$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
{
  echo "module github.com/udp-discovery-bridge/bridge/e2e/internal/k8slab/toolmod"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//')"
  echo
  echo "tool ("
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
    echo "	k8s.io/kubernetes/cmd/$c"
  done
  echo ")"
  echo
  echo "require k8s.io/kubernetes $ver"
  echo
  echo "replace ("
  sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/.*$|	\1 => \1 '"$staging"'|p' "$mod"
  echo ")"
} > go.mod
go mod tidy
