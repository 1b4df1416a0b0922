#!/usr/bin/env bash
# Encrypted history: sign-in fetch+decrypt of 10,000 conversations, and server put/get
# throughput over HTTP vs straight on the store, on SQLite and PostgreSQL in one run.
# Usage: bench/history.sh [sqlite] [postgres]   (default: both)
# PostgreSQL comes from scripts/postgres (installed and started on first use; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
backends=("$@")
if [[ ${#backends[@]} -eq 0 ]]; then
    backends=(sqlite postgres)
fi
for b in "${backends[@]}"; do
    if [[ $b == postgres ]]; then
        eval "$(bash scripts/postgres env)"
    fi
done
cargo run --quiet --release -p sotto --example bench_history -- "${backends[@]}"
