#!/usr/bin/env bash
# Reproducible performance run: the root module's Go benchmarks, then the
# end-to-end performance scenarios of e2e/perf/perf_*_test.go (network namespaces,
# the real bridge binary, a real Consul agent or three-server cluster), among
# them the time-to-visible scenarios TestPerfVisibleAgent (stdout, file and
# agent-mode Consul) and TestPerfVisibleCatalog (catalog mode) of
# e2e/perf/perf_visible_test.go. See docs/performance.md for what each figure
# means.
#
# Usage: scripts/bench.sh [results-dir]          (default ./bench-results)
# Env:   BENCH_COUNT (6)       -count of the Go benchmarks (benchstat wants >= 6 for a confidence interval)
#        BENCH_CPU   (1,2)     -cpu list of the Go benchmarks (1 = "one core" targets)
#        BENCH_PKGS  (./pkg/... ./internal/...)
#        BENCH_E2E   (1)       0 skips the end-to-end scenarios (they need root)
#        BENCH_E2E_RUN (^TestPerf)  -run pattern of the e2e scenarios
#        BRIDGE_PERF_CONSUL_SERVERS (2000)  servers of the quiet-rounds Consul scenario (10000: see docs/performance.md, "Consul with many servers")
#        BRIDGE_PERF_VISIBLE_SERVERS (50)   servers the time-to-visible scenarios start one by one
#        BRIDGE_PERF_VISIBLE_SEED (19)      seed of their random start schedule
#        BENCHSTAT   (go run golang.org/x/perf/cmd/benchstat@latest)
#        BENCH_RMEM_DEFAULT (1)  0 skips the receive-buffer scenario at rmem_max 208 KiB (it lowers the global sysctl for its duration, then restores it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-bench-results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
count=${BENCH_COUNT:-6}
cpus=${BENCH_CPU:-1,2}
pkgs=${BENCH_PKGS:-./pkg/... ./internal/...}

machine="$out/machine-$stamp.txt"
{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "nproc:   $(nproc)"
  echo "cpu:     $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory:  $(grep -m1 '^MemTotal' /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
  echo "kernel:  $(uname -sr)"
  echo "go:      $(go version)"
  echo "rmem_max: $(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo ?)"
  echo "load:    $(cut -d" " -f1-3 /proc/loadavg) (1/5/15 min load average at start: other work on the machine skews the figures)"
} | tee "$machine"

raw="$out/bench-$stamp.txt"
echo
echo "== go test -run '^\$' -bench . -benchmem -count $count -cpu $cpus $pkgs  -> $raw"
go test -run '^$' -bench . -benchmem -count "$count" -cpu "$cpus" -timeout 30m $pkgs | tee "$raw"
ln -sf "$(basename "$raw")" "$out/bench-latest.txt"

echo
stat="$out/benchstat-$stamp.txt"
if [ -n "${BENCHSTAT:-}" ]; then
  read -r -a bs <<<"$BENCHSTAT"
elif command -v benchstat >/dev/null 2>&1; then
  bs=(benchstat)
else
  bs=(go run golang.org/x/perf/cmd/benchstat@latest)
fi
echo "== ${bs[*]} $raw  -> $stat"
if "${bs[@]}" "$raw" >"$stat" 2>"$stat.err"; then
  cat "$stat"
  rm -f "$stat.err"
else
  echo "benchstat unavailable or failed (see $stat.err); raw results are in $raw"
fi

if [ "${BENCH_E2E:-1}" = "0" ]; then
  echo "BENCH_E2E=0: skipping the end-to-end scenarios"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "the end-to-end scenarios need root (network namespaces); skipping them (rerun as root)" >&2
  exit 0
fi
e2e="$out/e2e-perf-$stamp.txt"
results="$out/e2e-perf-results-$stamp.txt"
run=${BENCH_E2E_RUN:-^TestPerf}
echo
echo "== cd e2e && BRIDGE_PERF=1 go test -run '$run' -count=1 -v -timeout 30m ./...  -> $e2e"
rc=0
(cd "$root/e2e" && BRIDGE_PERF=1 BRIDGE_PERF_OUT="$results" go test -run "$run" -count=1 -v -timeout 30m ./...) | tee "$e2e" || rc=$?

# The receive-buffer scenario again at the kernel's default rmem_max (208
# KiB), as on a node nobody tuned: the sysctl is global (not per network
# namespace), so it is lowered only for this scenario and restored on any
# exit. The test suite never changes it.
if [ "${BENCH_RMEM_DEFAULT:-1}" != "0" ] && [ -w /proc/sys/net/core/rmem_max ]; then
  saved=$(cat /proc/sys/net/core/rmem_max)
  trap 'echo "$saved" > /proc/sys/net/core/rmem_max' EXIT
  echo 212992 > /proc/sys/net/core/rmem_max
  echo
  echo "== net.core.rmem_max lowered from $saved to 212992 for TestPerfImageReceiveBuffer"
  (cd "$root/e2e" && BRIDGE_PERF=1 BRIDGE_PERF_OUT="$results" go test -run '^TestPerfImageReceiveBuffer$' -count=1 -v -timeout 10m ./perf/) | tee -a "$e2e" || rc=$?
  echo "$saved" > /proc/sys/net/core/rmem_max
  trap - EXIT
  echo "== net.core.rmem_max restored to $saved"
fi
echo
echo "== result lines ($results)"
cat "$results" 2>/dev/null || grep 'PERF ' "$e2e" || true
exit "$rc"
