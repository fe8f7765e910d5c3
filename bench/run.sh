#!/usr/bin/env bash
# Conclave vs Janus, same machine, same load, same CPU budget, in one run.
#
#   bench/run.sh [quick|full|smoke] [scenario ...]
#
# Installs Janus when missing (Debian package), builds release binaries and the release addon,
# then for each scenario and each target: starts the server pinned to one core (taskset), runs
# the load generator pinned to the other, stops the server. Writes bench/results/ (JSON, CSV,
# per-client CSV, PNG plots when matplotlib is there) and the load sections of bench/RESULTS.md.
# Everything stays on 127.0.0.1. quick < 10 minutes; full is longer (1->500, audio-500, and
# bench/bwe/browser.mjs: Chromium's bandwidth estimate against ours over capped links).
#
# Env: BENCH_TARGETS ("conclave janus"), BENCH_SERVER_CORE (0), BENCH_LOADGEN_CORE (1),
# BENCH_CONCLAVE_MAIN (ts/server/dist/src/main.js: the Conclave entry point to run),
# BENCH_PRIORITY (nice: servers and load generator at nice -20 over other work on this shared
# machine; rt: SCHED_RR priority 10 via chrt, immune to other work but its 100 ms round-robin
# slices let one thread of a server hold the core against its siblings, which penalises
# multi-threaded servers such as Node + worker; none), BENCH_SKIP_BUILD (unset; 1 reuses the binaries already built). Scenario files say how long
# each window is (bench/scenarios/*.json).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile="${1:-quick}"
shift || true
case "$profile" in
  quick) scenarios=(1-to-10 1-to-100 10x10 audio-100) ;;
  full) scenarios=(1-to-10 1-to-100 1-to-500 10x10 50-last-n audio-100 audio-500) ;;
  smoke) scenarios=(smoke) ;;
  *) echo "usage: bench/run.sh [quick|full|smoke] [scenario ...]" >&2; exit 2 ;;
esac
if [ "$#" -gt 0 ]; then scenarios=("$@"); fi
read -r -a targets <<<"${BENCH_TARGETS:-conclave janus}"
server_core="${BENCH_SERVER_CORE:-0}"
loadgen_core="${BENCH_LOADGEN_CORE:-1}"
case "${BENCH_PRIORITY:-nice}" in
  nice) boost=(nice -n -20) ;;
  rt) boost=(chrt -r 10) ;;
  none) boost=() ;;
  *) echo "BENCH_PRIORITY must be nice, rt or none" >&2; exit 2 ;;
esac
results="$root/bench/results"
build="$root/bench/.build"
# Ports of their own, so a developer's server on 8080/40000 does not collide with the bench.
conclave_http=18080
conclave_udp=41000
janus_http=18088
janus_rtp="42000-43999"
mkdir -p "$results" "$build"
started_at=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- install and build -------------------------------------------------------------------------
if [[ " ${targets[*]} " == *" janus "* ]] && ! command -v janus >/dev/null; then
  log "installing janus (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  log "building release: load generator, UDP ceiling, Conclave's addon"
  cargo build --release -p conclave-loadgen -p conclave-udp-ceiling -p conclave-node
  if [[ " ${targets[*]} " == *" conclave "* ]]; then
    log "building the TypeScript server"
    npm run build:ts >/dev/null
  fi
fi
# The napi addon in bindings/node may be a debug build; the bench loads the release one.
cp "$root/target/release/libconclave_node.so" "$build/conclave-media.node"
loadgen="$root/target/release/conclave-loadgen"
conclave_main="${BENCH_CONCLAVE_MAIN:-$root/ts/server/dist/src/main.js}"

# --- servers -----------------------------------------------------------------------------------
server_pid=""
wrapper_pid=""
stop_server() {
  if [ -n "$wrapper_pid" ]; then kill "$wrapper_pid" 2>/dev/null || true; wait "$wrapper_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  for _ in $(seq 50); do
    if [ -z "$server_pid" ] || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -n "$server_pid" ]; then kill -9 "$server_pid" 2>/dev/null || true; fi
  server_pid=""
  wrapper_pid=""
}
trap stop_server EXIT INT TERM

wait_http() { # url, seconds
  for _ in $(seq $(($2 * 10))); do
    if curl -sf -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_conclave() {
  CONCLAVE_HTTP_PORT=$conclave_http CONCLAVE_HTTP_HOST=127.0.0.1 CONCLAVE_UDP_PORT=$conclave_udp \
    CONCLAVE_UDP_BIND_ADDRESS=127.0.0.1 CONCLAVE_ANNOUNCED_ADDRESS=127.0.0.1 CONCLAVE_LOG_LEVEL=warn \
    NAPI_RS_NATIVE_LIBRARY_PATH="$build/conclave-media.node" \
    "${boost[@]}" taskset -c "$server_core" node "$conclave_main" >"$results/$1.conclave.server.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$conclave_http/healthz" 20
}

start_janus() {
  JANUS_CORE=$server_core JANUS_HTTP_PORT=$janus_http JANUS_RTP_PORTS=$janus_rtp JANUS_DEBUG_LEVEL=2 \
    "${boost[@]}" "$root/bench/janus/run.sh" >"$results/$1.janus.server.log" 2>&1 &
  wrapper_pid=$!
  wait_http "http://127.0.0.1:$janus_http/janus/info" 20 || return 1
  server_pid=$(pgrep -P "$wrapper_pid" -x janus | head -1)
  [ -n "$server_pid" ]
}

# --- run ---------------------------------------------------------------------------------------
log "UDP loopback ceiling"
# Never real-time: its sender spins.
nice -n -10 taskset -c "$loadgen_core,$server_core" "$root/target/release/conclave-udp-ceiling" --seconds 3 \
  --relay-core "$server_core" --load-core "$loadgen_core" --json "$results/udp-ceiling.json" || log "UDP ceiling failed"

for scenario in "${scenarios[@]}"; do
  file="$root/bench/scenarios/$scenario.json"
  [ -f "$file" ] || { log "no scenario file $file"; exit 2; }
  name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$file")
  for target in "${targets[@]}"; do
    rm -f "$results/$name.$target.json" "$results/$name.$target.clients.csv" "$results/$name.$target.error"
    log "$name on $target: starting the server on core $server_core"
    if ! "start_$target" "$name"; then
      echo "the $target server did not start; see $name.$target.server.log" >"$results/$name.$target.error"
      log "$target did not start"
      stop_server
      continue
    fi
    sleep 1 # idle RSS baseline after startup
    url="http://127.0.0.1:$conclave_http"
    [ "$target" = janus ] && url="http://127.0.0.1:$janus_http/janus"
    log "$name on $target: load generator on core $loadgen_core (server pid $server_pid)"
    if ! "${boost[@]}" taskset -c "$loadgen_core" "$loadgen" --target "$target" --scenario "$file" --url "$url" \
        --server-pid "$server_pid" --out "$results" >/dev/null; then
      echo "the load generator failed against $target" >"$results/$name.$target.error"
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the $target server exited during the run; see $name.$target.server.log" >>"$results/$name.$target.error"
    fi
    stop_server
  done
done

# --- report ------------------------------------------------------------------------------------
python3 - "$results/run-info.json" "$profile" "$started_at" "$server_core" "$loadgen_core" "${BENCH_PRIORITY:-nice}" <<'PY'
import json, os, platform, subprocess, sys, time
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
info = {
    "profile": sys.argv[2],
    "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "duration_s": int(time.time()) - int(sys.argv[3]),
    "git": out("git", "rev-parse", "--short", "HEAD"),
    "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
    "janus": out("janus", "--version").splitlines()[0] if out("janus", "--version") else "",
    "node": out("node", "--version"),
    "server_core": int(sys.argv[4]), "loadgen_core": int(sys.argv[5]), "priority": sys.argv[6],
    "load_average": open("/proc/loadavg").read().split()[:3],
}
json.dump(info, open(sys.argv[1], "w"), indent=2)
PY
python3 "$root/bench/report.py" "$results" "$root/bench/RESULTS.md" "${scenarios[@]}"
if [ "$profile" = full ]; then
  # Real Chromium against our estimator over capped links (its own RESULTS.md section, ~2 minutes).
  log "bandwidth estimation against Chromium's own (bench/bwe/browser.mjs)"
  node "$root/bench/bwe/browser.mjs" >/dev/null || log "bench/bwe/browser.mjs failed"
fi
log "done in $(( $(date +%s) - started_at )) s; see bench/RESULTS.md"
