#!/usr/bin/env bash
# The web client's evidence check: the same Rust code (sotto-web's ChannelCore::finish: Noise NX
# message 2, evidence verification, binding) compiled natively and to wasm (run in V8), against
# one `sotto enclave` in the same run; prints medians and the wasm/native ratio.
# Usage: bench/web.sh [MODEL.gguf] [RUNS]   (default: the tiny generated model, 30 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
runs=${2:-30}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

bash scripts/web > "$work/web.log" 2>&1 || { cat "$work/web.log" >&2; exit 1; }
cargo build --quiet --release -p sotto -p sotto-web --example finish_native
model=${1:-}
if [[ -z $model ]]; then
  model="$work/tiny.gguf"
  cargo run --quiet --release -p sotto-testkit --example tiny_model -- "$model"
fi
"$target/release/sotto" enclave --model "$model" --data-dir "$work/enclave" --listen 127.0.0.1:0 > "$work/enclave.log" 2>&1 &
for _ in $(seq 600); do
  addr=$(sed -n 's/.*enclave listening on \([0-9.:]*\).*/\1/p' "$work/enclave.log")
  [[ -n $addr ]] && break
  sleep 0.5
done
[[ -n ${addr:-} ]] || { cat "$work/enclave.log" >&2; exit 1; }
root=$(base64 -w0 "$work/enclave/collateral/simulated-root.der")
policy="{\"allow_simulated\":true,\"simulated_root\":\"$root\"}"

native=$("$target/release/examples/finish_native" "$addr" "$policy" "$runs")
wasm=$(node bench/web-finish.mjs "$addr" "$policy" "$runs")
node -e '
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const n = med(JSON.parse(process.argv[1]).native_finish_ms);
const w = med(JSON.parse(process.argv[2]).wasm_finish_ms);
console.log(`| evidence check (Channel.finish), median of ${process.argv[3]} | ms |`);
console.log("| --- | --- |");
console.log(`| native (release) | ${n.toFixed(2)} |`);
console.log(`| wasm in V8 (node ${process.version}) | ${w.toFixed(2)} |`);
console.log(`| ratio wasm / native | ${(w / n).toFixed(1)}x |`);
' "$native" "$wasm" "$runs"
