#!/usr/bin/env bash
# What the release-log check adds to opening a verified channel, natively, against the evidence
# check in the same run (cold and warm, logs of 1..1000 releases), and the bytes fetched.
# Usage: bench/releases.sh [--reps N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --locked -p sotto-release --example log_check_bench -- "$@"
