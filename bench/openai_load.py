"""N concurrent streamed chat completions against an OpenAI-compatible server (llama-server),
for bench/batching.sh: prints one JSON row with aggregate generated tokens per second and time
to first token p50/p99. Standard library only; the server must be up (bench/batching.sh waits).

Usage: openai_load.py BASE_URL N MAX_TOKENS
"""
import json
import math
import sys
import threading
import time
import urllib.request

# The prompts of crates/engine/examples/concurrency.rs, in the same order.
TOPICS = [
    "a lighthouse keeper", "a river delta", "a clockmaker", "a mountain pass",
    "a night market", "an old library", "a salt mine", "a glass blower",
    "a winter harbour", "a desert observatory", "a violin maker", "a ferry crossing",
    "a beekeeper", "a paper mill", "a tram depot", "a kelp forest",
]


def prompt(i):
    return f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}. Do not stop early."


def ask(base, i, max_tokens, out):
    body = json.dumps({
        "messages": [{"role": "user", "content": prompt(i)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }).encode()
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    started = time.monotonic()
    first = None
    tokens = 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if choice.get("delta", {}).get("content") and first is None:
                    first = time.monotonic()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    out[i] = ((first or time.monotonic()) - started, tokens)


def quantile(values, q):
    values = sorted(values)
    rank = min(max(math.ceil(q * len(values)), 1), len(values))
    return values[rank - 1]


def main():
    base, n, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = [None] * n
    threads = [threading.Thread(target=ask, args=(base, i, max_tokens, out)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    if any(o is None for o in out):
        sys.exit("a request failed")
    ttft = [o[0] * 1e3 for o in out]
    tokens = sum(o[1] for o in out)
    print(json.dumps({"mode": "llama-server", "n": n, "tokens": tokens, "wall_s": round(wall, 3),
                      "tok_s": round(tokens / wall, 2), "ttft_p50_ms": round(quantile(ttft, 0.5), 1),
                      "ttft_p99_ms": round(quantile(ttft, 0.99), 1)}))


main()
