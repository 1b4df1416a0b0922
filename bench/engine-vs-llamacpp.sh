#!/usr/bin/env bash
# Compares sotto-engine's throughput with llama.cpp's own llama-bench on the same model,
# machine and thread count: prompt processing of 128 tokens (pp128) and generation of 64 tokens
# (tg64), 3 repetitions each, measured the same way by both (see crates/engine/src/bench.rs).
#
# Usage: bench/engine-vs-llamacpp.sh MODEL.gguf [threads]
#
# llama-bench is built by scripts/llama-cpp from the llama.cpp tree vendored in the
# llama-cpp-python 0.3.36 source distribution (fetched with pip), in Release mode, and cached
# under ${SOTTO_LLAMA_CACHE:-~/.cache/sotto-llama} so later runs start at once.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 MODEL.gguf [threads]" >&2
    exit 2
fi
model=$(realpath "$1")
threads=${2:-$(nproc)}
[[ -f $model ]] || { echo "no such model file: $model" >&2; exit 2; }
for tool in python3 cargo; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

repo=$(cd "$(dirname "$0")/.." && pwd)
bench_bin=$(bash "$repo/scripts/llama-cpp" llama-bench)
version=0.3.36
pp=128
tg=64
reps=3

echo "== llama.cpp llama-bench ($version), $threads threads" >&2
llama_json=$("$bench_bin" -m "$model" -p $pp -n $tg -t "$threads" -r $reps -o json)

echo "== sotto-engine bench example, $threads threads" >&2
ours=$(cd "$repo" && cargo run --quiet --release -p sotto-engine --example bench -- \
    "$model" --threads "$threads" --pp $pp --tg $tg --reps $reps)
ours_json=$(grep '^RESULT ' <<<"$ours" | sed 's/^RESULT //')

LLAMA_JSON=$llama_json OURS_JSON=$ours_json python3 - "$model" "$threads" <<'PY'
import json, os, sys
model, threads = sys.argv[1], sys.argv[2]
llama = json.loads(os.environ["LLAMA_JSON"])
ours = json.loads(os.environ["OURS_JSON"])
def pick(pp, tg):
    for r in llama:
        if r["n_prompt"] == pp and r["n_gen"] == tg:
            return r["avg_ts"], r["stddev_ts"]
    sys.exit(f"llama-bench gave no pp={pp} tg={tg} result")
l_pp, l_pp_sd = pick(ours["pp"], 0)
l_tg, l_tg_sd = pick(0, ours["tg"])
print(f"model: {os.path.basename(model)}, threads: {threads}")
print(f"| test | llama.cpp tok/s | sotto-engine tok/s | ours/llama.cpp |")
print(f"| --- | --- | --- | --- |")
print(f"| pp{ours['pp']} | {l_pp:.2f} ± {l_pp_sd:.2f} | {ours['pp_ts']:.2f} ± {ours['pp_sd']:.2f} | {ours['pp_ts']/l_pp:.2f} |")
print(f"| tg{ours['tg']} | {l_tg:.2f} ± {l_tg_sd:.2f} | {ours['tg_ts']:.2f} ± {ours['tg_sd']:.2f} | {ours['tg_ts']/l_tg:.2f} |")
PY
