#!/usr/bin/env bash
# WHIP/WHEP signaling load with k6 against a Conclave started here, pinned like bench/run.sh
# (server on core 0, k6 on core 1). Installs k6 with `go install` when it is missing.
#
#   bench/k6/run.sh                 # 20 virtual users for 30 s
#   VUS=50 DURATION=60s bench/k6/run.sh
#
# Env: VUS (20), DURATION (30s), BENCH_CONCLAVE_MAIN (ts/server/dist/src/main.js). Needs the
# release addon from bench/run.sh (bench/.build/conclave-media.node) or builds it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
k6="$(command -v k6 || echo "$(go env GOPATH)/bin/k6")"
if [ ! -x "$k6" ]; then
  echo "installing k6 (go install go.k6.io/k6@latest)" >&2
  go install go.k6.io/k6@latest
fi
addon="$root/bench/.build/conclave-media.node"
if [ ! -f "$addon" ]; then
  cargo build --release -p conclave-node
  mkdir -p "$(dirname "$addon")" && cp "$root/target/release/libconclave_node.so" "$addon"
fi
main="${BENCH_CONCLAVE_MAIN:-$root/ts/server/dist/src/main.js}"
CONCLAVE_HTTP_PORT=18080 CONCLAVE_HTTP_HOST=127.0.0.1 CONCLAVE_UDP_PORT=41000 \
  CONCLAVE_UDP_BIND_ADDRESS=127.0.0.1 CONCLAVE_LOG_LEVEL=warn NAPI_RS_NATIVE_LIBRARY_PATH="$addon" \
  taskset -c 0 node "$main" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:18080/healthz && break; sleep 0.1; done
mkdir -p "$root/bench/results"
taskset -c 1 "$k6" run -e BASE_URL=http://127.0.0.1:18080 -e VUS="${VUS:-20}" -e DURATION="${DURATION:-30s}" \
  --summary-export "$root/bench/results/k6-whip-whep.json" "$root/bench/k6/whip-whep.js"
