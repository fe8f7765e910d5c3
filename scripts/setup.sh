#!/usr/bin/env bash
# Installs everything Conclave's build and tests need on a fresh Debian machine with Node and Rust:
# Debian packages (Chromium for the browser tests), npm dependencies, and cargo-fuzz. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund --loglevel=error

if [ "${CONCLAVE_SKIP_FUZZ:-0}" != "1" ] && ! cargo fuzz --version >/dev/null 2>&1; then
  if rustup toolchain list | grep -q nightly; then
    echo "setup: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  else
    echo "setup: no nightly toolchain; fuzz runs will be skipped"
  fi
fi
echo "setup: done"
