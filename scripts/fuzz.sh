#!/usr/bin/env bash
# Runs every cargo-fuzz target of sfu-core for a few seconds each (default 10), starting from the
# committed seed corpus. Needs nightly and cargo-fuzz (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../crates/sfu-core"
seconds="${1:-10}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz or nightly missing; skipped (run scripts/setup.sh)"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in stun rtp rtcp red sdp dependency_descriptor engine_datagram; do
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "$work/$target" "fuzz/corpus/seed/$target" -- \
    -max_total_time="$seconds" -print_final_stats=0 2>&1 | grep -E 'Done|ERROR|panicked|crash' || true
  if [ -n "$(ls fuzz/artifacts/$target 2>/dev/null)" ]; then
    echo "fuzz: $target found a crash: fuzz/artifacts/$target"
    exit 1
  fi
done
echo "fuzz: all targets ran clean"
