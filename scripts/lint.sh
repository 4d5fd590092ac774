#!/usr/bin/env bash
# Lints the root module with golangci-lint v2 (.golangci.yml), built from its
# Go module (tools/golangci, a module of its own so it never moves the
# project's dependency versions) once per version and cached under
# ~/.cache/udp-discovery-bridge (45 s cold on 2 cores, plus the download).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
ver=$(cd tools/golangci && go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/udp-discovery-bridge/golangci-lint-$ver
bin=$dir/golangci-lint
if [ ! -x "$bin" ]; then
  echo "building golangci-lint $ver into $dir"
  mkdir -p "$dir"
  (cd tools/golangci && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
  mv "$bin.tmp" "$bin"
fi
"$bin" run ./...
