#!/usr/bin/env bash
# Relay tokens (Privacy Pass, blind RSA 2048): issuance and redemption steps against an Ed25519
# signature measured in the same run, and the durable record of a spent nonce. Release build;
# the load average is printed with the numbers.
# Usage: bench/tokens.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p sotto-tokens --example tokens_bench
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores); load:$(uptime | sed 's/.*load average://')"
echo
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$target/release/examples/tokens_bench"
