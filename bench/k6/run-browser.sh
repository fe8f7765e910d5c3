#!/usr/bin/env bash
# The k6 browser scenario (browser-meeting.js) against a Conclave started here on free loopback
# ports: headless Debian Chromium with a fake camera publishes, viewers assert on getStats().
#
#   bench/k6/run-browser.sh
#   VIEWERS=5 HOLD_S=40 bench/k6/run-browser.sh
#
# Env: VIEWERS (3), HOLD_S (30), CHROMIUM (/usr/bin/chromium), BENCH_CONCLAVE_MAIN
# (ts/server/dist/src/main.js; needs `npm run build:ts` and the addon in bindings/node).
# Writes the k6 summary export to SUMMARY (bench/results/k6-browser.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
k6="$(command -v k6 || echo "$(go env GOPATH)/bin/k6")"
if [ ! -x "$k6" ]; then
  echo "installing k6 (go install go.k6.io/k6@latest)" >&2
  go install go.k6.io/k6@latest
fi

# A port nobody is bound to now (TCP for HTTP, UDP for media); the kernel picks it.
free_port() {
  python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])" "$1"
}
http_port="$(free_port SOCK_STREAM)"
udp_port="$(free_port SOCK_DGRAM)"
base="http://127.0.0.1:$http_port"

main="${BENCH_CONCLAVE_MAIN:-$root/ts/server/dist/src/main.js}"
log="$(mktemp -t conclave-k6-browser.XXXXXX.log)"
CONCLAVE_HTTP_PORT="$http_port" CONCLAVE_HTTP_HOST=127.0.0.1 CONCLAVE_UDP_PORT="$udp_port" \
  CONCLAVE_UDP_BIND_ADDRESS=127.0.0.1 CONCLAVE_ANNOUNCED_ADDRESS=127.0.0.1 CONCLAVE_LOG_LEVEL=warn \
  node "$main" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 200); do curl -sf -o /dev/null "$base/healthz" && break; sleep 0.1; done
if ! curl -sf -o /dev/null "$base/healthz"; then
  echo "server did not start; its log ($log):" >&2
  cat "$log" >&2
  exit 1
fi

summary="${SUMMARY:-$root/bench/results/k6-browser.json}"
mkdir -p "$(dirname "$summary")"
K6_BROWSER_EXECUTABLE_PATH="${CHROMIUM:-/usr/bin/chromium}" \
  K6_BROWSER_HEADLESS=true \
  K6_BROWSER_ARGS="no-sandbox,use-fake-ui-for-media-stream,use-fake-device-for-media-stream,allow-loopback-in-peer-connection,autoplay-policy=no-user-gesture-required,disable-gpu" \
  "$k6" run -e BASE_URL="$base" -e VIEWERS="${VIEWERS:-3}" -e HOLD_S="${HOLD_S:-30}" \
  --summary-export "$summary" "$root/bench/k6/browser-meeting.js"
