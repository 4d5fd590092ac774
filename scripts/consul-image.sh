#!/usr/bin/env bash
# Builds a local image tagged exactly hashicorp/consul:1.20.6 FROM scratch, from
# the Consul binary the end-to-end tests build from Consul's Go module (and
# cache in $UDB_CACHE, else $XDG_CACHE_HOME/udp-discovery-bridge, else
# ~/.cache/udp-discovery-bridge). For hosts that cannot pull from Docker Hub:
# docker-compose.yml then runs unchanged. Its command is explicit
# (`agent -dev -client 0.0.0.0`), so this image (entrypoint /bin/consul) and
# the official one (entrypoint docker-entrypoint.sh, which prepends `consul`)
# start the same agent.
#
# An existing hashicorp/consul:1.20.6 (the official image, or this one) is left
# alone unless FORCE=1. Environment: DOCKER (default docker), FORCE.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
docker=${DOCKER:-docker}
tag=hashicorp/consul:1.20.6
version=v1.20.6 # e2e/internal/consulbin.Version

if [ "${FORCE:-0}" != 1 ] && "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag is already present (FORCE=1 to rebuild)"
  exit 0
fi

if [ -n "${UDB_CACHE:-}" ]; then cache=$UDB_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then cache=$XDG_CACHE_HOME/udp-discovery-bridge
else cache=$HOME/.cache/udp-discovery-bridge
fi
bin=$cache/consul-$version
if [ ! -x "$bin" ]; then
  # The same build as the tests' (file-locked, cached): the first run takes minutes.
  echo "building consul $version into $cache (first run only)"
  (cd e2e && go test -count=1 -timeout 20m -run '^TestConsulBinary$' ./internal/consulbin/ >/dev/null)
fi
[ -x "$bin" ] || { echo "consul-image.sh: no consul binary at $bin" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/consul"
chmod 0755 "$ctx/consul"
mkdir -m 1777 "$ctx/tmp"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY consul /bin/consul
COPY tmp /tmp
LABEL org.opencontainers.image.title="consul" \
      org.opencontainers.image.version="1.20.6" \
      org.opencontainers.image.description="Consul 1.20.6 built from its Go module by udp-discovery-bridge scripts/consul-image.sh (a local stand-in for the official image)"
USER 100:1000
EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8600 8600/udp
ENTRYPOINT ["/bin/consul"]
CMD ["agent", "-dev", "-client", "0.0.0.0"]
DOCKERFILE
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} "$docker" build -q -t "$tag" "$ctx" >/dev/null
echo "built $tag from $bin ($("$docker" image inspect -f '{{.Size}}' "$tag") bytes)"
