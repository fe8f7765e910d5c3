#!/usr/bin/env bash
# Installs what Conclave needs on a fresh Debian machine with Node and Rust. Idempotent.
#   scripts/setup.sh              npm dependencies (enough to build and run the server)
#   scripts/setup.sh --for-tests  also Debian packages the tests use (Chromium, Firefox ESR, redis-server, coturn, Xvfb, PulseAudio, ffmpeg) and cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
for_tests=0
[ "${1:-}" = "--for-tests" ] && for_tests=1

need_apt=()
if [ "$for_tests" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  command -v firefox-esr >/dev/null 2>&1 || need_apt+=(firefox-esr)
  command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
  # The recorder's tests: a virtual display, a sound server and the encoder.
  command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb)
  command -v xauth >/dev/null 2>&1 || need_apt+=(xauth)
  command -v pulseaudio >/dev/null 2>&1 || need_apt+=(pulseaudio)
  command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund --loglevel=error

if [ "$for_tests" = 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
  if rustup toolchain list | grep -q nightly; then
    echo "setup: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  else
    echo "setup: no nightly toolchain; fuzz runs will be skipped"
  fi
fi
echo "setup: done"
