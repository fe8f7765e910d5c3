#!/usr/bin/env bash
# Bandwidth-estimation benchmark: runs every simulated link profile (CSV per profile, summary
# into bench/RESULTS.md), then plots each CSV to a PNG. Deterministic: same numbers every run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo run --quiet -p bwe-bench -- --out "$here/results" --results "$here/../RESULTS.md"
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
python3 "$here/plot.py" "$here/results"
