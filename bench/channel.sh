#!/usr/bin/env bash
# The channel's costs against their baselines in the same run: the hybrid post-quantum
# handshake against the X25519-only one it replaced, and a streamed answer's bytes padded
# against unpadded. Release build; the load average is printed with the numbers.
# Usage: bench/channel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p sotto-channel --example channel_bench
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores); load:$(uptime | sed 's/.*load average://')"
echo
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$target/release/examples/channel_bench"
