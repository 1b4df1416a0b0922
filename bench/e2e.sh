#!/usr/bin/env bash
# The full encrypted path (client -> relay -> enclave) vs the same engine in-process, and the
# latency of opening a verified channel. Usage: bench/e2e.sh [MODEL.gguf] [threads]
# Without MODEL, the default model is fetched (or reused) under the default data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}
threads=${2:-$(nproc)}
if [[ -z $model ]]; then
    model=$(cargo run --quiet --release -p sotto -- model fetch)
fi
cargo run --quiet --release -p sotto --example bench_e2e -- "$model" --threads "$threads" --tokens 64 --reps 5 --handshakes 20
