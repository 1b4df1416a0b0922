#!/usr/bin/env bash
# Attestation verification time per platform (SEV-SNP, TDX, NVIDIA) on the real vectors in
# shared/vectors: first call in a fresh process, cold median and warm-cache median, as a
# markdown table with the goals. Release build; the machine's load skews the numbers, so the
# load average is printed with them. Usage: bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p sotto-verify --example verify_bench
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores); load:$(uptime | sed 's/.*load average://')"
echo
exe="${CARGO_TARGET_DIR:-target}/release/examples/verify_bench"
"$exe"
