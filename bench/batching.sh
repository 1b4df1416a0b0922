#!/usr/bin/env bash
# Many conversations at once on one model, one machine, one thread count, in one run:
# aggregate generated tokens per second and time to first token (p50, p99) at 1, 4, 8 and 16
# concurrent conversations for
#   (a) the embedded engine before batching: a llama.cpp context per conversation, each with
#       the given threads (`Engine::generate` on N threads, what the enclave ran until
#       continuous batching);
#   (b) the embedded engine with batching: one `Batcher` decoding them all together (what the
#       enclave runs now);
#   (c) llama.cpp's own llama-server with --parallel N, streamed over its OpenAI API.
# The prompts are the same 16 ("Write a long, detailed story about ..."), decoding is greedy,
# 64 tokens at most, 4096 tokens of context per conversation. Both engines are built for
# x86-64-v3 (AVX2), like Sotto's release binaries: a native build on an Intel CPU with AMX
# crashes in llama.cpp's AMX matrix multiply on Q4_K models (llama.cpp issue 20824), and one
# ISA for both keeps the comparison fair. Set RUSTFLAGS and SOTTO_LLAMA_CPU to change it.
#
# Usage: bench/batching.sh MODEL.gguf [threads] [counts]
#   e.g. bench/batching.sh ~/.local/share/sotto/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf 2 1,4,8,16
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
    echo "usage: $0 MODEL.gguf [threads] [counts]" >&2
    exit 2
fi
model=$(realpath "$1")
threads=${2:-$(nproc)}
counts=${3:-1,4,8,16}
tokens=64
context=4096
[[ -f $model ]] || { echo "no such model file: $model" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)

export RUSTFLAGS=${RUSTFLAGS:--C target-cpu=x86-64-v3}
server_bin=$(SOTTO_LLAMA_CPU=${SOTTO_LLAMA_CPU:-x86-64-v3} bash "$repo/scripts/llama-cpp" llama-server)

echo "== sotto-engine, (a) a context per conversation and (b) batched, $threads threads" >&2
ours=$(cd "$repo" && cargo run --quiet --release -p sotto-engine --example concurrency -- \
    "$model" --threads "$threads" --tokens $tokens --context $context --conversations "$counts")
grep -v '^RESULT ' <<<"$ours" >&2
ours_json=$(grep '^RESULT ' <<<"$ours" | sed 's/^RESULT //')

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_pid=
trap '[[ -n $server_pid ]] && kill $server_pid 2>/dev/null; true' EXIT
server_rows=()
for n in ${counts//,/ }; do
    echo "== (c) llama-server --parallel $n, $threads threads" >&2
    "$server_bin" -m "$model" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
        -np "$n" -c $((context * n)) -b 512 -ub 512 --no-webui >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 600); do
        kill -0 $server_pid 2>/dev/null || { echo "llama-server exited before it was ready" >&2; exit 1; }
        curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.5
    done
    row=$(python3 "$repo/bench/openai_load.py" "http://127.0.0.1:$port" "$n" $tokens)
    kill $server_pid; wait $server_pid 2>/dev/null || true
    server_pid=
    echo "$row" >&2
    server_rows+=("$row")
done

OURS=$ours_json SERVER=$(IFS=,; echo "[${server_rows[*]}]") python3 - "$model" "$threads" <<'PY'
import json, os, sys
model, threads = sys.argv[1], sys.argv[2]
ours = json.loads(os.environ["OURS"])
server = {r["n"]: r for r in json.loads(os.environ["SERVER"])}
def row(mode, n):
    return next(r for r in ours if r["mode"] == mode and r["n"] == n)
print(f"model: {os.path.basename(model)}, threads: {threads}")
print("| N | (a) separate tok/s | (b) batched tok/s | (c) llama-server tok/s | b/a | b/c "
      "| TTFT p50/p99 ms (a) | (b) | (c) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for n in sorted(server):
    a, b, c = row("separate", n), row("batched", n), server[n]
    print(f"| {n} | {a['tok_s']:.1f} | {b['tok_s']:.1f} | {c['tok_s']:.1f} "
          f"| {b['tok_s']/a['tok_s']:.2f} | {b['tok_s']/c['tok_s']:.2f} "
          f"| {a['ttft_p50_ms']:.0f}/{a['ttft_p99_ms']:.0f} | {b['ttft_p50_ms']:.0f}/{b['ttft_p99_ms']:.0f} "
          f"| {c['ttft_p50_ms']:.0f}/{c['ttft_p99_ms']:.0f} |")
PY
